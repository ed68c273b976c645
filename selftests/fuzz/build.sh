#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Build the fuzzers (libFuzzer + ASan + UBSan): fuzz_policy from
# selftests/fuzz/fuzz_policy.c and the library's parsers (policy.c, the
# schema, the annotations), fuzz_common (the front-ends' address and option
# value parsers) from fuzz_common.c and user/common, fuzz_annotations (the
# istio annotations) from fuzz_annotations.c and the same library parsers,
# fuzz_cni (sockmesh-cni's environment, config and replies, no kernel work)
# from fuzz_cni.c, user/cni's conf.c and reply.c and the same, fuzz_pcapng
# (the pcapng reader and writer, the replay's reassembly, no network) from
# fuzz_pcapng.c and user/common.
#   selftests/fuzz/build.sh [OUTDIR]    default OUTDIR: build/fuzz
# CC overrides the compiler (default: clang, else clang-14).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/build/fuzz}

cc=${CC:-}
if [ -z "$cc" ]; then
	for c in clang clang-14; do
		if command -v "$c" >/dev/null; then
			cc=$c
			break
		fi
	done
fi
if [ -z "$cc" ]; then
	echo "build.sh: clang not found (set CC)" >&2
	exit 2
fi

mkdir -p "$out"
read -r -a jsonc_cflags <<<"$(pkg-config --cflags json-c)"
read -r -a jsonc_libs <<<"$(pkg-config --libs json-c)"
"$cc" -std=gnu11 -g -O1 \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Wall -Wextra -Werror \
	-D_GNU_SOURCE -I "$root/headers" -I "$root/user/lib" -I "$root/user/common" "${jsonc_cflags[@]}" \
	"$here/fuzz_policy.c" "$root/user/lib/policy.c" "$root/user/lib/schema.c" \
	"$root/user/common/parse.c" \
	"$root/user/lib/annotations.c" "${jsonc_libs[@]}" \
	-o "$out/fuzz_policy"
echo "built $out/fuzz_policy"
"$cc" -std=gnu11 -g -O1 \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Wall -Wextra -Werror \
	-D_GNU_SOURCE -I "$root/user/common" \
	"$here/fuzz_common.c" "$root"/user/common/{addr,opts,parse}.c \
	-o "$out/fuzz_common"
echo "built $out/fuzz_common"
lib=("$root/user/lib/policy.c" "$root/user/lib/schema.c" "$root/user/lib/annotations.c"
	"$root/user/common/parse.c")
"$cc" -std=gnu11 -g -O1 \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Wall -Wextra -Werror \
	-D_GNU_SOURCE -I "$root/headers" -I "$root/user/lib" -I "$root/user/common" "${jsonc_cflags[@]}" \
	"$here/fuzz_annotations.c" "${lib[@]}" "${jsonc_libs[@]}" \
	-o "$out/fuzz_annotations"
echo "built $out/fuzz_annotations"
# conf.c sees only the public header, as in sockmesh-cni's meson build (the
# library's files find internal.h beside them)
"$cc" -std=gnu11 -g -O1 \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Wall -Wextra -Werror \
	-D_GNU_SOURCE -I "$root/headers" -I "$root/user/cni" -I "$root/user/common" "${jsonc_cflags[@]}" \
	"$here/fuzz_cni.c" "$root/user/cni/conf.c" "$root/user/cni/reply.c" \
	"$root/user/common/file.c" "$root/user/common/text.c" "${lib[@]}" "${jsonc_libs[@]}" \
	-o "$out/fuzz_cni"
echo "built $out/fuzz_cni"
"$cc" -std=gnu11 -g -O1 \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Wall -Wextra -Werror \
	-D_GNU_SOURCE -I "$root/user/common" \
	"$here/fuzz_pcapng.c" "$root"/user/common/{pcapng,replay,addr,parse}.c \
	-o "$out/fuzz_pcapng"
echo "built $out/fuzz_pcapng"
