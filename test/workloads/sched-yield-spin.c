/* Incident: a spin-then-yield lock waits for a "ready" flag that the producer thread was supposed
 * to set before it crashed. The waiter calls sched_yield() in a loop; with no other runnable
 * thread on the CPU, each yield returns at once and the waiter burns a core. */
#include <sched.h>
#include <stdatomic.h>

static atomic_int producer_ready; /* never set: the producer is gone */

__attribute__((noinline)) static void wait_for_producer(void) {
  while (!atomic_load_explicit(&producer_ready, memory_order_acquire)) sched_yield();
}

int main(void) {
  wait_for_producer();
  return 0;
}
