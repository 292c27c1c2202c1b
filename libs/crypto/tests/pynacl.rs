//! Interop: sealed boxes made by PyNaCl (libsodium) open with Coffer's sealing key.

#![allow(clippy::unwrap_used, missing_docs)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use coffer_crypto::sealed::SealingKeyPair;
use coffer_test_support::{python_with, run_interop};

#[test]
fn values_sealed_by_pynacl_open_here() {
    let Some(python) = python_with(&["nacl"]) else {
        return;
    };
    let pair = SealingKeyPair::generate().unwrap();
    let messages = ["sk-proj-1234567890abcdef", "ключ 🔑", ""];
    let output = run_interop(
        &python,
        "pynacl_seal.py",
        &[&STANDARD.encode(pair.public_key())],
        &serde_json::to_vec(&messages).unwrap(),
    );
    let sealed: Vec<String> = serde_json::from_slice(&output).unwrap();
    for (message, sealed) in messages.iter().zip(sealed) {
        let opened = pair.open(&STANDARD.decode(sealed).unwrap()).unwrap();
        assert_eq!(opened.expose_secret(), message.as_bytes());
    }
}
