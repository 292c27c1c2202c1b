"""Reads the QR code in an SVG from Coffer's enrollment page, as a phone's camera would.

Standard input: the SVG. The squares of its path (each `M{x} {y}h{w}v{h}H{x}V{y}`, the form
the `qrcode` crate writes) are painted on an image, which zxing-cpp, an independent decoder,
reads. Standard output: the decoded text, and the fields PyOTP finds in it, as JSON.
"""

import json
import re
import sys

import pyotp
import zxingcpp
from PIL import Image, ImageDraw

SCALE = 4

svg = sys.stdin.read()
size = re.search(r'viewBox="0 0 (\d+) (\d+)"', svg)
width, height = int(size.group(1)), int(size.group(2))
image = Image.new("L", (width * SCALE, height * SCALE), 255)
draw = ImageDraw.Draw(image)
squares = re.findall(r"M(\d+) (\d+)h(\d+)v(\d+)H\d+V\d+", svg)
for x, y, w, h in squares:
    x, y, w, h = int(x), int(y), int(w), int(h)
    draw.rectangle(
        [x * SCALE, y * SCALE, (x + w) * SCALE - 1, (y + h) * SCALE - 1], fill=0
    )
found = zxingcpp.read_barcodes(image)
texts = [barcode.text for barcode in found if barcode.format == zxingcpp.BarcodeFormat.QRCode]
answer = {"squares": len(squares), "texts": texts}
if len(texts) == 1:
    totp = pyotp.parse_uri(texts[0])
    answer.update(
        {"issuer": totp.issuer, "name": totp.name, "secret": totp.secret, "digits": totp.digits}
    )
json.dump(answer, sys.stdout)
