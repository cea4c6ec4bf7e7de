/* Incident: a consumer switched its socket to non-blocking mode to "avoid hangs" but kept the old
 * loop that simply calls recv() again. The producer has gone quiet, so every recv fails with
 * EAGAIN immediately; there is no epoll/poll to wait on, and the loop burns a core. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

__attribute__((noinline)) static void drain_messages(int fd) {
  char buf[2048];
  for (;;) {
    if (recv(fd, buf, sizeof buf, 0) < 0 && errno != EAGAIN) return;
  }
}

int main(void) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) return 1;
  drain_messages(sv[0]); /* sv[1] stays open and silent: no EOF, just no data */
  return 1;
}
