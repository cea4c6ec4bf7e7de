/* Incident: a connection handler registered its socket for EPOLLIN|EPOLLOUT "just in case" but
 * only ever reads, and nothing is ever written to it. An idle socket is always writable, so the
 * level-triggered epoll_wait returns at once on every call, the handler's non-blocking read finds
 * no data (EAGAIN), and the event loop burns a core without moving a byte. */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

__attribute__((noinline)) static void handle_connection_readable(int fd) {
  char buf[4096];
  (void)read(fd, buf, sizeof buf); /* EAGAIN every time: no request has arrived */
}

__attribute__((noinline)) static void run_event_loop(int epfd) {
  struct epoll_event events[8];
  for (;;) {
    int n = epoll_wait(epfd, events, 8, -1);
    for (int i = 0; i < n; i++) handle_connection_readable(events[i].data.fd);
  }
}

int main(void) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) return 1;
  int epfd = epoll_create1(0);
  struct epoll_event interest = {.events = EPOLLIN | EPOLLOUT, .data.fd = sv[0]};
  if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, sv[0], &interest) != 0) return 1;
  run_event_loop(epfd);
  return 0;
}
