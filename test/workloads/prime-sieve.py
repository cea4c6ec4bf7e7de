# Counterpart (legitimate compute): a pure-Python number-crunching job (sieving primes), like a
# data-processing script with no I/O. Interpreter frames dominate and it makes almost no syscalls,
# but every iteration does real work, so it must not be flagged as a busy loop.


def count_primes_below(limit: int) -> int:
    is_prime = bytearray([1]) * limit
    is_prime[0:2] = b"\x00\x00"
    for n in range(2, int(limit**0.5) + 1):
        if is_prime[n]:
            for multiple in range(n * n, limit, n):
                is_prime[multiple] = 0
    return sum(is_prime)


limit = 200_000
while True:
    count_primes_below(limit)
    limit = 200_000 + (limit + 1) % 1000  # vary the input so each round is fresh work
