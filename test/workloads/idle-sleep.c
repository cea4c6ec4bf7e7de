/* Counterpart (idle): a housekeeping daemon that wakes every 100 ms to check for work and finds
 * none, like a cron-style poller or health checker. It is almost always asleep in nanosleep and
 * uses a negligible share of a core; it must be reported idle, not busy. */
#include <time.h>

__attribute__((noinline)) static void sleep_until_next_check(void) {
  const struct timespec period = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
  nanosleep(&period, NULL);
}

int main(void) {
  for (;;) sleep_until_next_check();
  return 0;
}
