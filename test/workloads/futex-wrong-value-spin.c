/* Incident: a hand-rolled condition variable passes a stale "expected" value to FUTEX_WAIT. The
 * kernel sees the futex word differs from it and returns EAGAIN at once instead of sleeping, so
 * the waiter retries forever and burns a core (a lost-wakeup bug turned into a spin). */
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_int job_done;   /* never set */
static atomic_int futex_word = 1;
static const int stale_value = 0; /* what the waiter wrongly believes the word holds */

__attribute__((noinline)) static void wait_for_job(void) {
  while (!atomic_load(&job_done))
    syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, stale_value, NULL, NULL, 0);
}

int main(void) {
  wait_for_job();
  return 0;
}
