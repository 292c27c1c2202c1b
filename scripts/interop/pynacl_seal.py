"""Seals messages with PyNaCl's SealedBox (libsodium's crypto_box_seal), an independent
implementation, for Coffer's tests to open.

Usage: pynacl_seal.py PUBLIC_KEY_BASE64 < messages.json > sealed.json
  messages.json: a JSON list of UTF-8 strings
  sealed.json:   the same list, each sealed and base64-encoded
"""

import base64
import json
import sys

from nacl.public import PublicKey, SealedBox

box = SealedBox(PublicKey(base64.b64decode(sys.argv[1])))
messages = json.load(sys.stdin)
json.dump([base64.b64encode(box.encrypt(m.encode())).decode() for m in messages], sys.stdout)
