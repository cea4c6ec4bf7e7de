/* Counterpart (legitimate I/O): a copy tool moving a stream in small chunks, like `dd bs=4k` or a
 * log shipper. It makes a very high rate of read/write syscalls, but every one of them moves real
 * bytes (/dev/zero to /dev/null), so it is making progress and must not be flagged. */
#include <fcntl.h>
#include <unistd.h>

#define CHUNK 4096

__attribute__((noinline)) static void copy_stream(int in, int out) {
  char buf[CHUNK];
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n <= 0 || write(out, buf, (size_t)n) != n) return;
  }
}

int main(void) {
  int in = open("/dev/zero", O_RDONLY);
  int out = open("/dev/null", O_WRONLY);
  if (in < 0 || out < 0) return 1;
  copy_stream(in, out);
  return 1; /* the copy never ends on its own: reaching here is an I/O error */
}
