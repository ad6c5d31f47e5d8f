/* The README's quick start: map memory from a pager, use it, read stats. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <ufpager.h>

int main(void)
{
	struct ufp_params params = { .size = sizeof(params), .version = UFP_PARAMS_VERSION };
	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };
	ufp_pager *pager;
	char *buf;
	int err = ufp_pager_create(&params, &pager);

	if (err) {
		fprintf(stderr, "ufp_pager_create: %s\n%s\n", strerror(-err), ufp_last_error());
		return err == -EPERM || err == -ENOSYS ? 77 : 1;
	}
	err = ufp_map(pager, NULL, 64 << 20, UFP_PROT_READ | UFP_PROT_WRITE, 0, (void **)&buf);
	if (!err) {
		memset(buf, 'x', 64 << 20);            /* every page faults in once */
		ufp_stats_get(pager, &st);
		printf("faults %llu, p50 %llu ns, p99 %llu ns\n", (unsigned long long)st.faults,
		       (unsigned long long)st.fault_lat.p50, (unsigned long long)st.fault_lat.p99);
		err = ufp_unmap(pager, buf, 64 << 20);
	}
	ufp_pager_destroy(pager);
	return err ? 1 : 0;
}
