"""A reference MLLP receiver for bench/hl7.sh: python-hl7's asyncio MLLP
server (Debian package python3-hl7), parsing each message and answering it
with an original-mode AA built by the library. It stores nothing, so it
bounds what a receiver that only parses and acknowledges achieves here.

Usage: python3 bench/hl7peer/peer.py PORT
"""
import asyncio
import sys

from hl7.mllp import start_hl7_server


async def serve(reader, writer):
    try:
        while not writer.is_closing():
            msg = await reader.readmessage()
            writer.writemessage(msg.create_ack())
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port):
    server = await start_hl7_server(serve, host="127.0.0.1", port=port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
