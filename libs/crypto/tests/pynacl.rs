//! Interop: sealed boxes made by PyNaCl (libsodium) open with Coffer's sealing key.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Write as _;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use coffer_crypto::sealed::SealingKeyPair;
use coffer_test_support::{python_with, workspace_root};

#[test]
fn values_sealed_by_pynacl_open_here() {
    let Some(python) = python_with(&["nacl"]) else {
        return;
    };
    let pair = SealingKeyPair::generate().unwrap();
    let messages = ["sk-proj-1234567890abcdef", "ключ 🔑", ""];
    let mut child = Command::new(python)
        .arg(workspace_root().join("scripts/interop/pynacl_seal.py"))
        .arg(STANDARD.encode(pair.public_key()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(&messages).unwrap())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let sealed: Vec<String> = serde_json::from_slice(&output.stdout).unwrap();
    for (message, sealed) in messages.iter().zip(sealed) {
        let opened = pair.open(&STANDARD.decode(sealed).unwrap()).unwrap();
        assert_eq!(opened.expose_secret(), message.as_bytes());
    }
}
