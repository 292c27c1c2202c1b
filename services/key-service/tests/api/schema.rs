//! On PostgreSQL the key-service keeps its tables in its own schema (`coffer_key`, or
//! `DATABASE_SCHEMA`), and never starts empty beside the tables of a deployment from before
//! schemas.

use coffer_test_support::{Backend, TestDatabase};

use crate::helpers::{Options, spawn_with};

#[tokio::test]
async fn tables_left_in_public_are_found_not_silently_replaced() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    // A deployment from before schemas: its tables are in `public`.
    // The keyring is not `Clone` (root keys are not copied around); later starts get the same
    // version 1 inside a keyring with one more version.
    let keyring = coffer_crypto::RootKeyring::generate().unwrap();
    let (upgraded_keyring, kept_keyring) = (
        keyring.with_new_version().unwrap(),
        keyring.with_new_version().unwrap(),
    );
    let mut old = Options::new();
    old.keyring = keyring;
    old.schema = Some("public".to_owned());
    let app = spawn_with(db, old).await.unwrap();
    app.create_key("tenants/acme/keys/kept").await;
    let ciphertext = app.encrypt("tenants/acme/keys/kept", b"kept", &[]).await;
    let (db, ca, clock) = app.stop().await;

    // Upgraded without setting the schema: refused, naming the fix.
    let mut upgraded = Options::new();
    upgraded.keyring = upgraded_keyring;
    let Err(refused) = spawn_with(db, upgraded).await else {
        panic!("started empty beside the tables in public");
    };
    assert_eq!(
        refused.error.to_string(),
        "this service's tables are in schema public, not coffer_key; set \
         DATABASE_SCHEMA=public to keep using them"
    );

    // With the schema set as the message says, everything is where it was.
    let kept = Options {
        keyring: kept_keyring,
        ca,
        clock,
        schema: Some("public".to_owned()),
        record_cache_ttl: None,
        auth_service: None,
    };
    let app = spawn_with(refused.database, kept).await.unwrap();
    let decrypted = app
        .decrypt("tenants/acme/keys/kept", &ciphertext, &[])
        .await
        .unwrap();
    assert_eq!(decrypted.plaintext, b"kept");
}
