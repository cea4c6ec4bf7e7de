// Incident: a job runner "polls without blocking the event loop" by checking its queue and
// re-arming itself with setImmediate when the queue is empty. The queue is never filled, so the
// loop spins forever: libuv never sleeps (its poll phase uses a zero timeout while an immediate
// is pending), runtime frames dominate the profile, and no bytes move.
const pendingJobs = [];

function checkForJobs() {
  const job = pendingJobs.shift();
  if (job) job();
  else setImmediate(checkForJobs);
}

checkForJobs();
