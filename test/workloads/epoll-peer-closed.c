/* Incident: the peer of a connection hung up, but the handler treats read() == 0 as "no data yet"
 * instead of end-of-file and never closes the socket. A peer-closed socket stays readable (EPOLLIN,
 * EPOLLRDHUP, EPOLLHUP) forever, so the level-triggered epoll_wait returns at once on every call,
 * each read returns 0 bytes, and the event loop burns a core without moving a byte. */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

__attribute__((noinline)) static void handle_connection_readable(int fd) {
  char buf[4096];
  (void)read(fd, buf, sizeof buf); /* the bug: 0 means EOF and fd should be closed */
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
  close(sv[1]); /* the peer hangs up before sending anything */
  int epfd = epoll_create1(0);
  struct epoll_event interest = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = sv[0]};
  if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, sv[0], &interest) != 0) return 1;
  run_event_loop(epfd);
  return 0;
}
