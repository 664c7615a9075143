/* sched_accounts.h — which scheduling structures a pool has, for those who read them all:
 * `kie stats`, the operator page, /metrics, and the budget releases (`kie budget set`,
 * the page's raise). Each account has its own structure <p>:sched:<acct>:* (sched.h;
 * "default" with one account, each alias with several), and `kie` may run with no
 * accounts file at all, so the workers write the names they use into one set:
 *
 *   <p>:accounts   SET   structure names (<acct> of <p>:sched:<acct>:*); never a token.
 *                        At most ACCOUNTS_MAX per configuration (the accounts rule), plus
 *                        names of structures that still hold jobs (below).
 *
 * Each worker adds its names at start and every recovery interval (so a Redis that lost
 * the set has it back within one interval), and once at start removes the names it does
 * not use whose structure is empty (no item, nothing over budget or delayed):
 * accounts_prune.lua re-checks that in the step that removes. A structure of an alias
 * taken out of the file is thus still read while it holds jobs (counted, listed, its
 * over_budget jobs released), and forgotten at the next start once it is empty; a worker
 * still using it (a rolling restart) adds it back within a recovery interval.
 *
 * Must not: write anything but <p>:accounts; read a token. */
#ifndef KIE_SCHED_ACCOUNTS_H
#define KIE_SCHED_ACCOUNTS_H

#include <stddef.h>

#include "kie/accounts.h"
#include "pool/queue.h"

#define SCHED_ACCOUNTS_READ_MAX 128 /* names a reader takes from the set at most */

/* The structures to read, sorted by name: every valid name of <p>:accounts (at most
 * SCHED_ACCOUNTS_READ_MAX) and "default" (SCHED_ACCOUNT_NAME) whether or not the set has
 * it (a pool whose workers predate the set, or no worker yet). */
struct sched_account {
	char name[ACCOUNT_ALIAS_MAX + 1];
	int registered; /* named in <p>:accounts (else: "default", read anyway) */
};
struct sched_accounts {
	int n;
	struct sched_account v[SCHED_ACCOUNTS_READ_MAX + 1];
};

/* Fills out (see above). 0, or -1 with q->err set (Redis unreachable or refused); on -1
 * out still lists "default", so a caller may go on with it. */
int sched_accounts_list(struct queue *q, struct sched_accounts *out);

/* The structure name of a worker's account a of n: SCHED_ACCOUNT_NAME with one account,
 * the alias with several (the rule of sched.h). */
const char *sched_accounts_name(const struct accounts *a, int i);

/* SADD <p>:accounts with the structure names of accounts a. 0 or -1 (q->err). */
int sched_accounts_register(struct queue *q, const struct accounts *a);

/* Removes from <p>:accounts each name that accounts a does not use and whose structure
 * holds nothing (accounts_prune.lua, one step per name). *removed (may be NULL) counts
 * them. 0 or -1 (q->err). */
int sched_accounts_prune(struct queue *q, const struct accounts *a, long *removed);

/* "<p>:sched:<acct>:<name>" into out. */
void sched_accounts_key(const struct queue *q, const char *acct, const char *name, char *out,
			size_t outlen);

#endif
