/*-------------------------------------------------------------------------
 *
 * lock_wait.h
 *	  Lock waits bounded by a time, that end in a result rather than an
 *	  error.  See lock_wait.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PTM_LOCK_WAIT_H
#define PTM_LOCK_WAIT_H

/*
 * The lock_timeout for a wait of at most wait_ms: wait_ms (0 taken as 1 ms,
 * since lock_timeout's 0 means no limit), or the session's own when shorter.
 */
extern int	ptm_bounded_lock_timeout(int wait_ms);

/*
 * Run fn(arg) in a subtransaction with lock_timeout at
 * ptm_bounded_lock_timeout(wait_ms): false, with fn's changes rolled back,
 * when a lock wait ran out (SQLSTATE 55P03, which is swallowed); any other
 * error propagates.
 */
extern bool ptm_with_lock_timeout(int wait_ms, void (*fn) (void *arg), void *arg);

#endif							/* PTM_LOCK_WAIT_H */
