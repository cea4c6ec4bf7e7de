// A failure a Query handler reports to its caller as is: this gRPC status and
// this message. Anything else thrown is an internal error.
import type * as grpc from '@grpc/grpc-js';

export class StatusError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}
