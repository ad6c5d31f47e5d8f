/* The heap: malloc-grade objects on pager memory. A million small
 * objects (a linked list) and a few large ones under a 64 MiB budget:
 * the pager evicts what does not fit and brings it back on access. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <ufpager.h>

struct node {
	struct node *next;
	unsigned long n;
	char name[40];
};

int main(void)
{
	struct ufp_params params = { .size = sizeof(params), .version = UFP_PARAMS_VERSION,
				     .budget = 64 << 20 };
	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };
	struct node *head = NULL;
	unsigned long sum = 0, bad = 0;
	ufp_pager *pager;
	ufp_heap *heap;
	int err = ufp_pager_create(&params, &pager);

	if (err) {
		fprintf(stderr, "ufp_pager_create: %s\n%s\n", strerror(-err), ufp_last_error());
		return err == -EPERM || err == -ENOSYS || err == -EOPNOTSUPP ? 77 : 1;
	}
	err = ufp_heap_create(pager, 0, &heap);
	if (err) {
		fprintf(stderr, "ufp_heap_create: %s\n", ufp_last_error());
		return 1;
	}
	for (unsigned long i = 0; i < 1000000; i++) {        /* ~72 MiB of nodes */
		struct node *n = ufp_heap_malloc(heap, sizeof(*n));

		if (!n)
			return 1;
		n->next = head;
		n->n = i;
		snprintf(n->name, sizeof(n->name), "node %lu", i);
		head = n;
	}
	char *big = ufp_heap_calloc(heap, 32, 1 << 20);       /* 32 MiB, zeroed */

	big = ufp_heap_realloc(heap, big, 48 << 20);          /* grows, keeps its data */
	memset(big, 'x', 48 << 20);
	for (struct node *n = head; n; n = n->next) {         /* read everything back */
		char want[40];

		snprintf(want, sizeof(want), "node %lu", n->n);
		bad += strcmp(n->name, want) != 0;
		sum += n->n;
	}
	ufp_stats_get(pager, &st);
	printf("sum %lu (%s), %lu pages resident, %llu swapped out, %llu back in\n", sum,
	       bad || sum != 499999500000ul ? "WRONG" : "ok",
	       (unsigned long)st.resident_pages, (unsigned long long)st.swapouts,
	       (unsigned long long)st.swapins);
	while (head) {
		struct node *next = head->next;

		ufp_heap_free(heap, head);
		head = next;
	}
	ufp_heap_free(heap, big);
	ufp_heap_destroy(heap);
	ufp_pager_destroy(pager);
	return bad || sum != 499999500000ul;
}
