# push/ (WebSocket hub): wslay does the WebSocket framing (libwslay-dev), nettle the SHA-1
# and base64 of the opening handshake (nettle-dev).
LIBS += -lwslay -lnettle
