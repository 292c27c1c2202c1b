"""Drives Coffer's REST API with a client generated from the gateway's own /openapi.json by
openapi-python-client (an independent generator): the generated package must be importable and
its typed calls must work end to end. Run by services/gateway/tests/openapi_client.rs with the
generated package on PYTHONPATH as `coffer_client`; the base URL and an org_admin API key of
tenant `acme` come from COFFER_REST_URL and COFFER_REST_KEY. Exits non-zero on any mismatch.
"""

import base64
import os
import sys

from coffer_client import AuthenticatedClient
from coffer_client.api.credential_service import (
    credential_service_create_credential as create_credential,
    credential_service_get_credential as get_credential,
    credential_service_list_credentials as list_credentials,
    credential_service_reveal_credential as reveal_credential,
)
from coffer_client.api.key_service import (
    key_service_create_key as create_key,
    key_service_decrypt as decrypt,
    key_service_encrypt as encrypt,
)
from coffer_client.models.coffer_v1_create_credential_request import (
    CofferV1CreateCredentialRequest,
)
from coffer_client.models.coffer_v1_create_credential_request_env import (
    CofferV1CreateCredentialRequestEnv,
)
from coffer_client.models.coffer_v1_credential import CofferV1Credential
from coffer_client.models.coffer_v1_decrypt_request import CofferV1DecryptRequest
from coffer_client.models.coffer_v1_encrypt_request import CofferV1EncryptRequest
from coffer_client.models.coffer_v1_encrypt_request_encryption_context import (
    CofferV1EncryptRequestEncryptionContext,
)
from coffer_client.models.coffer_v1_decrypt_request_encryption_context import (
    CofferV1DecryptRequestEncryptionContext,
)
from coffer_client.models.coffer_v1_key import CofferV1Key
from coffer_client.models.coffer_v1_key_state import CofferV1KeyState
from coffer_client.models.coffer_v1_reveal_credential_request import (
    CofferV1RevealCredentialRequest,
)
from coffer_client.models.error import Error


def check(condition, what):
    if not condition:
        sys.exit(f"generated client: {what}")


def main():
    client = AuthenticatedClient(
        base_url=os.environ["COFFER_REST_URL"], token=os.environ["COFFER_REST_KEY"]
    )
    secret = "ghp_generatedClientSECRET"

    env = CofferV1CreateCredentialRequestEnv()
    env["GITHUB_TOKEN"] = secret
    created = create_credential.sync(
        "acme",
        client=client,
        body=CofferV1CreateCredentialRequest(server_id="github", env=env),
    )
    check(isinstance(created, CofferV1Credential), f"create answered {created!r}")
    check(secret not in repr(created.to_dict()), "a create answers masked")
    credential_id = created.name.rsplit("/", 1)[1]

    read = get_credential.sync("acme", credential_id, client=client)
    check(isinstance(read, CofferV1Credential), f"get answered {read!r}")
    check(read.server_id == "github", "the server id round-trips")
    check(read.row_version == "1", f"uint64 is a string: {read.row_version!r}")

    listed = list_credentials.sync("acme", client=client, page_size=10)
    check(
        any(c.name == created.name for c in listed.credentials),
        f"the credential is listed: {listed!r}",
    )

    revealed = reveal_credential.sync(
        "acme", credential_id, client=client, body=CofferV1RevealCredentialRequest()
    )
    check(
        revealed is not None and revealed.env["GITHUB_TOKEN"] == secret,
        "reveal gives the value back",
    )

    key = create_key.sync("acme", client=client, key_id="app", body=CofferV1Key())
    check(isinstance(key, CofferV1Key), f"create key answered {key!r}")
    check(key.state == CofferV1KeyState.KEY_STATE_ENABLED, f"enum by name: {key.state!r}")

    plaintext = b"generated \x00 client"
    context = CofferV1EncryptRequestEncryptionContext()
    context["purpose"] = "openapi"
    sealed = encrypt.sync(
        "acme",
        "app",
        client=client,
        body=CofferV1EncryptRequest(
            plaintext=base64.b64encode(plaintext).decode(), encryption_context=context
        ),
    )
    check(sealed.key_version == 1, f"encrypt answered {sealed!r}")
    decrypt_context = CofferV1DecryptRequestEncryptionContext()
    decrypt_context["purpose"] = "openapi"
    opened = decrypt.sync(
        "acme",
        "app",
        client=client,
        body=CofferV1DecryptRequest(
            ciphertext=sealed.ciphertext, encryption_context=decrypt_context
        ),
    )
    check(base64.b64decode(opened.plaintext) == plaintext, "decrypt gives the plaintext")

    # An error is the documented JSON error, parsed into its model.
    missing = get_credential.sync("acme", "0" * 32, client=client)
    check(isinstance(missing, Error), f"a missing credential answered {missing!r}")
    check(missing.error.code == 404, f"the error's code: {missing!r}")
    check(missing.error.status == "NOT_FOUND", f"the error's status: {missing!r}")
    print("generated client: every call as documented")


main()
