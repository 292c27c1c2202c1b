//! Interop: the QR code on the two-step sign-in enrollment page reads back, with zxing-cpp
//! (an independent decoder, as an authenticator app's camera would), as exactly the key URI,
//! and PyOTP finds the secret and account in it.

#![allow(clippy::unwrap_used, missing_docs)]

use coffer_crypto::totp::TotpSecret;
use coffer_proto::pb;
use coffer_test_support::{python_with, run_interop};
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
    let output = run_interop(&python, "qr_decode.py", &[], &page.as_bytes()[start..end]);
    let answer: serde_json::Value = serde_json::from_slice(&output).unwrap();
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
