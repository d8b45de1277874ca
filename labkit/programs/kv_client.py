"""A client of a key-value server on a Unix datagram socket (lesson 06's checks).

Usage: python -m labkit.programs.kv_client SERVER_PATH MY_PATH REQUEST...

It binds its own datagram socket at MY_PATH (so the server can answer it),
sends each REQUEST to the socket at SERVER_PATH, waits up to 5 s for each
reply, and prints the replies joined by "|"; a reply that did not come in
5 s is "(no reply)", and the requests after it are not sent.
"""
import socket
import sys


def main() -> None:
    server, me = sys.argv[1], sys.argv[2]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(me)                        # a datagram client needs an address to be answered
        s.settimeout(5)
        replies = []
        for request in sys.argv[3:]:
            s.sendto(request.encode(), server)
            try:
                replies.append(s.recv(1 << 16).decode())
            except TimeoutError:
                replies.append("(no reply)")
                break
    print("|".join(replies))


if __name__ == "__main__":
    main()
