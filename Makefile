# onggi — the newcomer's two commands are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
# cargo builds for the musl target named in .cargo/config.toml (onggi is one static binary), so
# its artifacts are under target/<triple>/.
TARGET := $(shell sed -n 's/^target = "\(.*\)"/\1/p' .cargo/config.toml)
OUT := $(CURDIR)/target/$(TARGET)
# The variable that makes cargo run that target's test binaries through a wrapper (the guests).
RUNNER := CARGO_TARGET_$(shell echo '$(TARGET)' | tr 'a-z-' 'A-Z_')_RUNNER
ONGGI := $(OUT)/release/onggi
ROOTFS := bundles/rootfs
# Every command that creates containers runs in a private mount namespace: a bug cannot leave
# mounts on the host or change the propagation of /.
PRIVATE := unshare -m --propagation private

.PHONY: all build deps bundles demo test test-cgroup-v2 test-systemd conformance bench lint clean e2e e2e-podman e2e-podman-rootless e2e-containerd e2e-docker e2e-docker-v2 e2e-systemd e2e-cri e2e-checkpoint labs labs-pictures docs install install-files

all: build

# Debian packages the build and the bundles need, installed when missing (apt's lists are
# fetched first on a machine that has none yet).
APT_INSTALL = apt-get install -y -qq $(1) >/dev/null 2>&1 || \
  { apt-get update -qq && apt-get install -y -qq $(1) >/dev/null; }

## deps: libseccomp-dev (onggi links the system libseccomp, as runc and crun do), musl-tools
## (musl-gcc, for libdbus's C sources) and Rust's musl target
deps:
	@dpkg -s libseccomp-dev pkg-config musl-tools >/dev/null 2>&1 || \
	  { echo "installing libseccomp-dev pkg-config musl-tools"; $(call APT_INSTALL,libseccomp-dev pkg-config musl-tools); }
	@! command -v rustup >/dev/null || rustup target list --installed | grep -qx $(TARGET) || \
	  rustup target add $(TARGET)

build: deps
	$(CARGO) build --release

## docs: man pages (onggi.8, onggi-COMMAND.8) and bash/zsh/fish completions in target/docs,
## generated from the clap definitions (examples/gen-docs.rs)
DOCS := $(CURDIR)/target/docs
docs: deps
	$(CARGO) run --release -q --example gen-docs -- $(DOCS) >/dev/null

## install: the binary, its man pages and completions under $(DESTDIR)$(PREFIX)
PREFIX ?= /usr/local
install: build docs install-files
install-files:
	install -D -m 755 $(ONGGI) $(DESTDIR)$(PREFIX)/bin/onggi
	install -d $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 644 $(DOCS)/man8/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -D -m 644 $(DOCS)/completions/onggi.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/onggi
	install -D -m 644 $(DOCS)/completions/_onggi $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_onggi
	install -D -m 644 $(DOCS)/completions/onggi.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/onggi.fish

$(ROOTFS)/bin/busybox:
	@command -v busybox >/dev/null && ! ldd "$$(command -v busybox)" >/dev/null 2>&1 || \
	  { echo "installing busybox-static"; $(call APT_INSTALL,busybox-static); }
	sh bundles/make-rootfs.sh $(ROOTFS)

bundles: $(ROOTFS)/bin/busybox

## demo: build onggi and run bundles/hello, which greets from inside its container
demo: build bundles
	$(PRIVATE) $(ONGGI) --root /run/onggi-demo run --bundle bundles/hello hello-$$$$

## test: unit tests, then the integration tests (real containers, as root), then conformance
# The tests compile under the citest profile (release without LTO: minutes less) and run the
# shipped binary, target/<triple>/release/onggi.
TEST_BUILD := --profile citest
export ONGGI_BIN := $(ONGGI)
test: build bundles lint
	$(CARGO) test $(TEST_BUILD) --lib
	$(CARGO) build --release --examples
	$(PRIVATE) $(CARGO) test $(TEST_BUILD) --test '*'
	$(MAKE) conformance

## test-cgroup-v2: the cgroup tests in a QEMU guest with a pure cgroup v2 hierarchy
## (../shared/vm/vmrun.sh); a missing controller fails there instead of skipping
VMRUN := $(CURDIR)/../shared/vm/vmrun.sh --timeout 600 -- unshare -m --propagation private
test-cgroup-v2: build bundles
	ONGGI_REQUIRE_CGROUP_V2=1 $(RUNNER)="$(VMRUN)" \
	  $(CARGO) test $(TEST_BUILD) --test cgroups
	ONGGI_REQUIRE_CGROUP_V2=1 $(RUNNER)="$(VMRUN)" \
	  $(CARGO) test $(TEST_BUILD) --test labs cgroup_lab

## test-systemd: the systemd cgroup driver's tests in the QEMU guest with systemd 252 as PID 1
## (../shared/vm/vmrun.sh --systemd): scopes, limits in both views, update, OOM, crash safety
VMRUN_SYSTEMD := $(CURDIR)/../shared/vm/vmrun.sh --systemd --timeout 900 -- unshare -m --propagation private
test-systemd: build bundles
	ONGGI_REQUIRE_SYSTEMD=1 $(RUNNER)="$(VMRUN_SYSTEMD)" \
	  $(CARGO) test $(TEST_BUILD) --test systemd
	ONGGI_REQUIRE_SYSTEMD=1 $(RUNNER)="$(VMRUN_SYSTEMD)" \
	  $(CARGO) test $(TEST_BUILD) --test crash_safety systemd

## lab-NAME: run one teaching lab (bundles/labs/NAME/lab.sh, see docs/labs.md); labs: all of
## them in order. A cgroup lab whose controller this host lacks runs in the pure cgroup v2 guest.
LABS := lifecycle entrypoint-cmd env pid-namespace uts-ipc network-none-host volumes layers \
  cgroup-memory cgroup-pids capabilities seccomp user-namespace exec stop \
  bridge-network port-publish logs commit
labs: build bundles
	@for l in $(LABS); do echo "=== lab $$l"; $(MAKE) --no-print-directory lab-$$l || exit 1; echo; done
lab-%: build bundles
	@test -f bundles/labs/$*/lab.sh || { echo "no lab '$*': the labs are: $(LABS)" >&2; exit 1; }
	@c=$*; c=$${c#cgroup-}; v2=$$(awk '$$9 == "cgroup2" {print $$5; exit}' /proc/self/mountinfo); \
	if [ "$$c" != "$*" ] && ! grep -qw "$$c" "$$v2/cgroup.controllers" 2>/dev/null; then \
	  echo "(no $$c controller at $$v2 here: running the lab in the pure cgroup v2 guest)"; \
	  $(VMRUN) env ONGGI=$(ONGGI) bash bundles/labs/$*/lab.sh; \
	else \
	  $(PRIVATE) env ONGGI=$(ONGGI) bash bundles/labs/$*/lab.sh; \
	fi

## labs-pictures: each lab's trace as an SVG timeline (bundles/labs/NAME/trace.svg, shown by
## its README), drawn by examples/trace-svg.rs from the Chrome trace of the lab's traced command
labs-pictures: build bundles
	$(CARGO) build --release --examples
	@for l in $(LABS); do f=$(CURDIR)/bundles/labs/$$l/trace.json; rm -f $$f; \
	  by=show; grep -q 'show_trace\|LAB_PICTURE' bundles/labs/$$l/lab.sh && by=show_trace; \
	  LAB_PICTURE=$$f LAB_PICTURE_BY=$$by $(MAKE) --no-print-directory lab-$$l >/dev/null || exit 1; \
	  $(OUT)/release/examples/trace-svg $$f > bundles/labs/$$l/trace.svg && rm -f $$f || exit 1; \
	  echo "bundles/labs/$$l/trace.svg"; done

lint: deps
	@for c in rustfmt clippy; do command -v rustup >/dev/null && ! rustup component list --installed 2>/dev/null | grep -q "^$$c" && rustup component add $$c; done; true
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --release -- -D warnings

## e2e: podman and containerd run their containers on onggi (tests/e2e; needs podman, conmon,
## containerd, umoci from apt). Each leaves no container, mount, cgroup or daemon behind.
e2e: e2e-podman e2e-podman-rootless e2e-containerd e2e-docker
e2e-podman: build bundles
	$(PRIVATE) bash tests/e2e/podman.sh $(ONGGI) $(CURDIR)/bundles/rootfs
e2e-podman-rootless: build bundles
	$(PRIVATE) bash tests/e2e/podman-rootless.sh $(ONGGI) $(CURDIR)/bundles/rootfs
e2e-containerd: build bundles
	$(PRIVATE) bash tests/e2e/containerd.sh $(ONGGI) $(CURDIR)/bundles/rootfs
## e2e-docker: a private dockerd + containerd in a private network and mount namespace runs
## every command a Docker learner types with --runtime onggi (tests/e2e/docker.sh; docker.io)
e2e-docker: build bundles
	unshare -m -n --propagation private bash tests/e2e/docker.sh $(ONGGI) $(CURDIR)/bundles/rootfs
## e2e-docker-v2: the same in the pure cgroup v2 guest, with runc side by side and the limit,
## update, OOM and stats checks. DOCKER_V2_RUNTIMES=onggi leaves runc out (CI does: half the time)
DOCKER_V2_RUNTIMES ?= onggi runc
e2e-docker-v2: build bundles
	$(CURDIR)/../shared/vm/vmrun.sh --systemd --timeout 1500 -- sh -c 'modprobe -a nf_tables nft_chain_nat nft_compat xt_addrtype xt_conntrack xt_MASQUERADE br_netfilter bridge veth overlay 2>/dev/null; \
	  unshare -m -n --propagation private env RUNTIMES="$(DOCKER_V2_RUNTIMES)" DOCKER_V2_CHECKS=1 TMPBASE=/var/tmp CGROUP_PARENT=/onggi-e2e-docker \
	  bash tests/e2e/docker.sh $(ONGGI) $(CURDIR)/bundles/rootfs'

## e2e-systemd: podman, containerd and Docker in their systemd cgroup configurations drive
## onggi --systemd-cgroup in the systemd guest (tests/e2e/systemd.sh)
e2e-systemd: build bundles
	$(CURDIR)/../shared/vm/vmrun.sh --systemd --timeout 900 -- sh -c 'modprobe -a nf_tables nft_chain_nat nft_compat xt_addrtype xt_conntrack xt_MASQUERADE br_netfilter bridge veth overlay 2>/dev/null; \
	  unshare -m -n --propagation private bash tests/e2e/systemd.sh $(ONGGI) $(CURDIR)/bundles/rootfs'

## e2e-cri: a Kubernetes node: containerd's CRI plugin with the runtime handler onggi, driven
## by a kubelet-like CRI client (tests/e2e/cri/kubelet.py), with the cgroupfs and then the
## systemd cgroup driver, in the systemd guest (its job is not chrooted, which exec needs).
## containerd 1.6 caches CNI results in /var/lib/cni: the guest binds a private dir over it.
e2e-cri: build bundles
	mkdir -p /var/lib/cni
	$(CURDIR)/../shared/vm/vmrun.sh --systemd --timeout 1200 -- sh -c 'modprobe -a bridge veth overlay 2>/dev/null; rc=0; \
	  for d in cgroupfs systemd; do echo "# the $$d cgroup driver"; \
	    CRI_DRIVER=$$d unshare -m -n --propagation private bash tests/e2e/cri.sh $(ONGGI) $(CURDIR)/bundles/rootfs || rc=1; done; exit $$rc'

## e2e-checkpoint: checkpoint and restore with CRIU in the systemd guest (this host's kernel
## cannot run CRIU 3.17; the guest's job is not chrooted, as CRIU needs): tests/e2e/checkpoint.sh,
## then podman's and containerd's own checkpoint and restore (tests/e2e/checkpoint-managers.sh)
e2e-checkpoint: build bundles
	$(CURDIR)/../shared/vm/vmrun.sh --systemd --timeout 1200 -- sh -c 'rc=0; \
	  unshare -m --propagation private bash tests/e2e/checkpoint.sh $(ONGGI) $(CURDIR)/bundles/rootfs || rc=1; \
	  unshare -m --propagation private bash tests/e2e/checkpoint-managers.sh $(ONGGI) $(CURDIR)/bundles/rootfs || rc=1; \
	  exit $$rc'

## conformance: the OCI runtime-tools programs the foundation must pass (see README)
CONFORMANCE := create state start kill kill_no_effect killsig delete delete_only_create_resources \
  default hostname mounts root_readonly_true linux_masked_paths linux_readonly_paths linux_devices \
  linux_ns_itype linux_ns_nopath linux_ns_path linux_ns_path_type linux_sysctl \
  linux_rootfs_propagation process process_user process_rlimits_fail process_oom_score_adj \
  process_capabilities_fail config_updates_without_affect \
  prestart_fail poststart_fail poststop poststop_fail linux_seccomp linux_uid_mappings
conformance: build
	bash tests/conformance.sh $(ONGGI) $(CONFORMANCE)

## bench: onggi, crun, runc and the kernel floor interleaved round by round: every figure of
## README "Speed" (BENCH_RUNS rounds, 60)
bench: build bundles
	bash bundles/bench/bench.sh $(ONGGI)

clean:
	$(CARGO) clean
	rm -rf $(ROOTFS)
