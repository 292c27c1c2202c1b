//! Interop: the QR code on the two-step sign-in enrollment page reads back, with zxing-cpp
//! (an independent decoder, as an authenticator app's camera would), as exactly the key URI,
//! and PyOTP finds the secret and account in it.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Write as _;
use std::process::{Command, Stdio};

use coffer_crypto::totp::TotpSecret;
use coffer_proto::pb;
use coffer_test_support::{python_with, workspace_root};
use secrecy::ExposeSecret as _;

#[test]
fn the_enrollment_qr_code_decodes_to_the_key_uri() {
    let Some(python) = python_with(&["zxingcpp", "PIL", "pyotp"]) else {
        return;
    };
    let secret = TotpSecret::generate().unwrap();
    let enrollment = pb::TotpEnrollment {
        secret: secret.base32().expose_secret().to_owned(),
        uri: secret
            .otpauth_uri("Coffer", "acme/alice")
            .expose_secret()
            .to_owned(),
        account: "acme/alice".into(),
    };
    let page = coffer_gateway::pages::enroll(&enrollment, "csrf", None);
    let start = page.find("<svg").expect("the page has the QR code");
    let end = page[start..].find("</svg>").unwrap() + start + "</svg>".len();
    let mut child = Command::new(python)
        .arg(workspace_root().join("scripts/interop/qr_decode.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&page.as_bytes()[start..end])
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(answer["squares"].as_u64().unwrap() > 100, "{answer}");
    assert_eq!(
        answer["texts"],
        serde_json::json!([enrollment.uri]),
        "{answer}"
    );
    assert_eq!(answer["issuer"], "Coffer");
    assert_eq!(answer["name"], "acme/alice");
    assert_eq!(answer["secret"], enrollment.secret);
    assert_eq!(answer["digits"], 6);
}
