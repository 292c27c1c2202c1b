-- Zero-knowledge credentials hold a client-encrypted blob instead of an environment map
-- (still envelope-encrypted at rest like every other row).
ALTER TABLE cred_credentials ADD COLUMN kind TEXT NOT NULL DEFAULT 'env';
