/* Incident: a worker was "made responsive" by checking its command channel with
 * poll(fds, n, 0) instead of blocking. No command ever arrives, so every poll returns 0 at once
 * and the worker re-checks in a tight loop, burning a core while waiting for nothing. */
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

__attribute__((noinline)) static int check_for_command(struct pollfd *fds, nfds_t n) {
  return poll(fds, n, 0);
}

__attribute__((noinline)) static void wait_for_commands(struct pollfd *fds, nfds_t n) {
  for (;;) {
    if (check_for_command(fds, n) > 0) return; /* never: nobody sends a command */
  }
}

int main(void) {
  int control[2], data[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, control) != 0) return 1;
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, data) != 0) return 1;
  struct pollfd fds[2] = {{.fd = control[0], .events = POLLIN}, {.fd = data[0], .events = POLLIN}};
  wait_for_commands(fds, 2);
  return 0;
}
