// Capture requests from the collector, checked before anything runs. The agent
// runs only its own fixed capture programs; a request picks one by number and
// passes numbers within fixed ranges, and anything else is refused with the
// reason, so a compromised collector cannot make an agent run its text.
import type { Logger } from 'pino';
import { CAPTURE_REQUEST_ID, captureNumbersProblem } from '../proto/capture-limits.js';
import { unknownFieldNumbers } from '../proto/codec.js';
import { CaptureProgram, type CaptureRequest } from '../proto/wire.js';

/** A request that passed every check: one fixed program and numbers in range. */
export interface ValidCaptureRequest {
  requestId: string;
  program: 'oncpu';
  durationSeconds: number;
  frequencyHz: number;
  /** 0 = every process on the host. */
  pid: number;
}

export type CaptureDecision = { accepted: true; request: ValidCaptureRequest } | { accepted: false; reason: string };

export function validateCaptureRequest(req: CaptureRequest): CaptureDecision {
  const refuse = (reason: string): CaptureDecision => ({ accepted: false, reason });
  const unknown = unknownFieldNumbers(req);
  if (unknown.length > 0) return refuse(`request carries fields this agent does not know or with the wrong type (field ${unknown.join(', ')})`);
  if (!CAPTURE_REQUEST_ID.test(req.requestId)) {
    return refuse('request_id must be 1-64 characters of letters, digits, "_" and "-", starting with a letter or digit');
  }
  if (req.program !== CaptureProgram.ONCPU) return refuse(`program ${req.program} is not a capture program this agent has (known: ${CaptureProgram.ONCPU} = ONCPU)`);
  const problem = captureNumbersProblem(req);
  if (problem) return refuse(problem);
  return {
    accepted: true,
    request: { requestId: req.requestId, program: 'oncpu', durationSeconds: req.durationSeconds, frequencyHz: req.frequencyHz, pid: req.pid },
  };
}

/** Longest excerpt of a refused request's id put in a log line or reported back. */
export const REFUSED_ID_EXCERPT_CHARS = 80;

/** The decision, with a refusal logged. */
export function acceptCaptureRequest(req: CaptureRequest, log: Logger): CaptureDecision {
  const decision = validateCaptureRequest(req);
  if (!decision.accepted) log.warn({ requestId: req.requestId.slice(0, REFUSED_ID_EXCERPT_CHARS), reason: decision.reason }, 'capture request refused');
  return decision;
}
