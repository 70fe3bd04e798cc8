/*
 * LD_PRELOAD shim: makes every file a program writes durable when it
 * closes it — fflush, fsync of the file, fsync of its directory — the
 * steps that stand between "written" and "survives a power loss", and
 * that the hub takes before it answers a C-STORE with Success. Preloaded
 * into DCMTK storescp (which writes each instance with stdio and closes it
 * before it responds), it turns the benchmark's file-writing peer into a
 * durable one, measured beside the plain one in the same run.
 *
 * Build: gcc -shared -fPIC -O2 -o syncclose.so syncclose.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static void make_durable(int fd) {
	struct stat st;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
	fsync(fd);
	char link[64], path[PATH_MAX];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof path - 1);
	if (n <= 0) return;
	path[n] = 0;
	int dir = open(dirname(path), O_RDONLY | O_DIRECTORY);
	if (dir >= 0) {
		fsync(dir);
		close(dir);
	}
}

int fclose(FILE *f) {
	static int (*real)(FILE *);
	if (!real) real = dlsym(RTLD_NEXT, "fclose");
	if (f && fflush(f) == 0) make_durable(fileno(f));
	return real(f);
}

int close(int fd) {
	static int (*real)(int);
	if (!real) real = dlsym(RTLD_NEXT, "close");
	make_durable(fd);
	return real(fd);
}
