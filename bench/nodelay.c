/*
 * LD_PRELOAD shim: sets TCP_NODELAY on every TCP socket a program connects
 * or accepts. Debian's DCMTK and Orthanc leave Nagle's algorithm on, which
 * delays each small DIMSE response by the peer's delayed ACK (~40 ms on
 * loopback); the hub sets TCP_NODELAY itself (Go's default). Preloading this
 * into the peers makes the comparison about the archives, not about Nagle.
 *
 * Build: gcc -shared -fPIC -O2 -o nodelay.so nodelay.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void nodelay(int fd) {
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
	static int (*real)(int, const struct sockaddr *, socklen_t);
	if (!real) real = dlsym(RTLD_NEXT, "connect");
	int rc = real(fd, addr, len);
	if (addr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)) nodelay(fd);
	return rc;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
	static int (*real)(int, struct sockaddr *, socklen_t *);
	if (!real) real = dlsym(RTLD_NEXT, "accept");
	int c = real(fd, addr, len);
	if (c >= 0) nodelay(c);
	return c;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
	static int (*real)(int, struct sockaddr *, socklen_t *, int);
	if (!real) real = dlsym(RTLD_NEXT, "accept4");
	int c = real(fd, addr, len, flags);
	if (c >= 0) nodelay(c);
	return c;
}
