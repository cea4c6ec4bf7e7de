/* Incident: a thread waits on a shutdown flag with a pure user-space spin (`while (!flag) pause`),
 * expecting it to flip within microseconds; the thread that should set it is stuck elsewhere.
 * No syscalls at all: the samples land on one or two instruction addresses. */
#include <stdatomic.h>

static atomic_int shutdown_acknowledged; /* never set */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  __asm__ volatile("yield");
#endif
}

__attribute__((noinline)) static void spin_until_acknowledged(void) {
  while (!atomic_load_explicit(&shutdown_acknowledged, memory_order_acquire)) cpu_relax();
}

int main(void) {
  spin_until_acknowledged();
  return 0;
}
