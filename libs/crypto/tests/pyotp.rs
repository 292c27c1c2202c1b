//! Interop: an authenticator app's view of Coffer's TOTP key URI. PyOTP (an independent
//! implementation) reads the URI and computes codes; Coffer's own are the same, and Coffer
//! accepts PyOTP's.

#![allow(clippy::unwrap_used, missing_docs)]

use coffer_crypto::totp::{STEP, TotpSecret};
use coffer_test_support::{python_with, run_interop};
use secrecy::ExposeSecret as _;

#[test]
fn pyotp_reads_the_key_uri_and_computes_the_same_codes() {
    let Some(python) = python_with(&["pyotp"]) else {
        return;
    };
    let secret = TotpSecret::generate().unwrap();
    let uri = secret.otpauth_uri("Coffer", "alice@acme corp");
    let times: Vec<i64> = vec![
        0,
        59,
        1_111_111_109,
        1_234_567_890,
        2_000_000_000,
        4_102_444_800,
    ];
    let request = serde_json::json!({"uri": uri.expose_secret(), "times": times});
    let output = run_interop(
        &python,
        "pyotp_codes.py",
        &[],
        request.to_string().as_bytes(),
    );
    let answer: serde_json::Value = serde_json::from_slice(&output).unwrap();
    assert_eq!(answer["issuer"], "Coffer");
    assert_eq!(answer["name"], "alice@acme corp");
    assert_eq!(answer["digits"], 6);
    assert_eq!(answer["interval"], 30);
    let codes = answer["codes"].as_array().unwrap();
    assert_eq!(codes.len(), times.len());
    for (time, code) in times.iter().zip(codes) {
        let code = code.as_str().unwrap();
        let step = u64::try_from(time / STEP).unwrap();
        assert_eq!(format!("{:06}", secret.code_at(step)), code, "at {time}");
        assert_eq!(secret.verify(code, *time, None), Some(time / STEP));
    }
}
