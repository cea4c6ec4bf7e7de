/* Counterpart (legitimate event-driven I/O): a consumer waiting in epoll_wait on a socket that a
 * producer thread keeps filling, like a proxy or message broker under load. epoll_wait reports
 * real readiness and each read returns data, so it is making progress and must not be flagged. */
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK 16384

__attribute__((noinline)) static void *produce_records(void *arg) {
  int fd = *(int *)arg;
  char record[CHUNK];
  memset(record, 'r', sizeof record);
  for (;;)
    if (write(fd, record, sizeof record) < 0) return NULL; /* blocks while the consumer lags */
}

__attribute__((noinline)) static void consume_records(int epfd) {
  struct epoll_event events[4];
  char buf[CHUNK];
  for (;;) {
    int n = epoll_wait(epfd, events, 4, -1);
    /* One read per readiness report: the socket really has data each time. */
    for (int i = 0; i < n; i++) {
      if (read(events[i].data.fd, buf, sizeof buf) <= 0) return;
    }
  }
}

int main(void) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
  pthread_t producer;
  if (pthread_create(&producer, NULL, produce_records, &sv[1]) != 0) return 1;
  int epfd = epoll_create1(0);
  struct epoll_event interest = {.events = EPOLLIN, .data.fd = sv[0]};
  if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, sv[0], &interest) != 0) return 1;
  consume_records(epfd);
  return 1; /* the producer never stops: reaching here is an I/O error */
}
