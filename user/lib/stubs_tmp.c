// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Temporary: the 0.2.0 API before its implementation lands. */
#include <errno.h>
#include <stdio.h>
#include "internal.h"

int sockmesh_probe_kernel(sockmesh_check_fn fn, void *ctx)
{
	(void)fn, (void)ctx;
	return -EOPNOTSUPP;
}
int sockmesh__for_each_link(struct sockmesh *sm, sockmesh_link_fn fn, void *ctx)
{
	(void)sm, (void)fn, (void)ctx;
	return -EOPNOTSUPP;
}
int sockmesh__policy_get(struct sockmesh *sm, const struct sockmesh_scope *scope,
			 enum sockmesh_field f, char *buf, size_t len)
{
	(void)sm, (void)scope, (void)f, (void)buf, (void)len;
	return -EOPNOTSUPP;
}
int sockmesh__policy_matches(struct sockmesh *sm, const struct sockmesh_scope *scope,
			     const struct sockmesh_policy *pol)
{
	(void)sm, (void)scope, (void)pol;
	return -EOPNOTSUPP;
}
