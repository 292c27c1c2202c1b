"""Reads a Coffer TOTP key URI with PyOTP, an independent implementation, and computes the
codes an authenticator app would show, for Coffer's tests to compare with their own.

Usage: pyotp_codes.py < request.json > answer.json
  request.json: {"uri": "otpauth://totp/...", "times": [unix seconds, ...]}
  answer.json:  {"issuer": ..., "name": ..., "digits": ..., "interval": ...,
                 "codes": ["123456", ...]}
"""

import json
import sys

import pyotp

request = json.load(sys.stdin)
totp = pyotp.parse_uri(request["uri"])
json.dump(
    {
        "issuer": totp.issuer,
        "name": totp.name,
        "digits": totp.digits,
        "interval": totp.interval,
        "codes": [totp.at(t) for t in request["times"]],
    },
    sys.stdout,
)
