/*
 * ioasid-adapter: the Linux lane's out-of-process adapter. It runs inside the QEMU guest as /init's payload and
 * speaks the JSON-lines protocol of conformance/INTERPRETING.md (protocol 1) over a virtio-serial port (or stdin / stdout
 * when no --port is given), driving the real kernel:
 *
 *   --mode iommufd   /dev/iommu and the edu device's VFIO cdev (profile iommufd)
 *   --mode type1     /dev/vfio/vfio and the edu device's group (profile vfio-type1; native type1 on kernel A,
 *                    iommufd's container emulation on kernel B)
 *
 * Every `run` request starts from fresh file descriptors (all closed and reopened: no reboot). User memory of the
 * trace ({buf, off}, {bad}) is real guest memory: buffers at 2 MiB-aligned bases followed by a PROT_NONE guard.
 * DEVICE_DMA runs real DMA on edu (dma.c). Logs go to stderr (the guest console).
 *
 * Not for: running outside a guest built by linux/setup.sh (it needs the edu device and the kernel's config),
 * or deciding what the kernel should answer — it reports what the kernel did.
 */
#define _GNU_SOURCE
#include "adapter.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <termios.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

struct adapter A;

/* ------------------------------------------------------------------------------------------------ errno names */

const char *errno_name(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case ENOSPC: return "ENOSPC";
	case EOVERFLOW: return "EOVERFLOW";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENOTTY: return "ENOTTY";
	case E2BIG: return "E2BIG";
	case EADDRINUSE: return "EADDRINUSE";
	case EMSGSIZE: return "EMSGSIZE";
	case ENOMEM: return "ENOMEM";
	case EDEADLOCK: return "EDEADLOCK";
	case ESPIPE: return "ESPIPE";
	case EBADF: return "EBADF";
	case EBADFD: return "EBADFD";
	case EACCES: return "EACCES";
	case EAGAIN: return "EAGAIN";
	case EIO: return "EIO";
	default: return NULL;
	}
}

/* ------------------------------------------------------------------------------------------------ steps */

struct step {
	int ok;
	int nout;
	char names[8][24];
	uint64_t vals[8];
};

static struct step *steps;
static size_t nsteps;

/* The outcome being built for the current step. */
static struct sb out;
static int out_fields;

static void begin_out(void)
{
	sb_reset(&out);
	out_fields = 0;
}

void out_u64(struct step *s, const char *name, uint64_t v)
{
	sb_printf(&out, "%s\"%s\":\"0x%llx\"", out_fields++ ? "," : "", name, (unsigned long long)v);
	if (s && s->nout < 8) {
		snprintf(s->names[s->nout], sizeof(s->names[0]), "%s", name);
		s->vals[s->nout++] = v;
	}
}

void out_num(struct step *s, const char *name, uint64_t v)
{
	sb_printf(&out, "%s\"%s\":%llu", out_fields++ ? "," : "", name, (unsigned long long)v);
	if (s && s->nout < 8) {
		snprintf(s->names[s->nout], sizeof(s->names[0]), "%s", name);
		s->vals[s->nout++] = v;
	}
}

/* Raw JSON member (a list, an object or a string literal), not referable. */
void out_raw(const char *name, const char *json)
{
	sb_printf(&out, "%s\"%s\":%s", out_fields++ ? "," : "", name, json);
}

/* ------------------------------------------------------------------------------------------------ arguments */

/* A malformed step: the request is answered with a protocol error naming the first bad field. */
static const char *bad_step;

static void set_bad(const char *field)
{
	if (!bad_step)
		bad_step = field;
}

static uint64_t arg_u64(const struct jv *c, const char *k, int required)
{
	uint64_t v = 0;
	int r = ju64(jget(c, k), &v);
	if (r < 0 || (r == 1 && required))
		set_bad(k);
	return v;
}

static long long arg_num(const struct jv *c, const char *k, int required, long long dflt)
{
	const struct jv *v = jget(c, k);
	if (!v) {
		if (required)
			set_bad(k);
		return dflt;
	}
	if (v->t != J_NUM) {
		set_bad(k);
		return dflt;
	}
	return v->n;
}

/* An IdArg: a number, or {ref, field?} resolved against this trace's replies (0 when unresolvable). */
static uint32_t arg_id(const struct jv *c, const char *k)
{
	const struct jv *v = jget(c, k);
	if (!v) {
		set_bad(k);
		return 0;
	}
	if (v->t == J_NUM)
		return (uint32_t)v->n;
	const struct jv *ref = jget(v, "ref");
	if (!ref || ref->t != J_NUM) {
		set_bad(k);
		return 0;
	}
	const struct jv *f = jget(v, "field");
	const char *field = f && f->t == J_STR ? f->s : "id";
	if (ref->n < 0 || (size_t)ref->n >= nsteps)
		return 0;
	struct step *s = &steps[ref->n];
	if (!s->ok)
		return 0;
	for (int i = 0; i < s->nout; i++)
		if (!strcmp(s->names[i], field))
			return (uint32_t)s->vals[i];
	return 0;
}

/* A UserPtr: {buf, off} or {bad: unmapped|top}, as a real guest address. */
static uint64_t arg_ptr(const struct jv *c, const char *k)
{
	const struct jv *v = jget(c, k);
	const struct jv *bad = jget(v, "bad");
	if (bad && bad->t == J_STR) {
		if (!strcmp(bad->s, "unmapped"))
			return A.unmapped_va;
		if (!strcmp(bad->s, "top"))
			return 0xfffffffffffff000ull;
	}
	const struct jv *b = jget(v, "buf");
	uint64_t off;
	if (!b || b->t != J_NUM || ju64(jget(v, "off"), &off) != 0) {
		set_bad(k);
		return 0;
	}
	if (b->n < 0 || b->n >= NBUF)
		return A.unmapped_va; /* a buffer the platform does not have: memory the process does not own */
	return (uint64_t)(uintptr_t)A.buf[b->n] + off;
}

/* ------------------------------------------------------------------------------------------------ fds */

static int iommufd_fd(void)
{
	if (A.ifd < 0)
		A.ifd = dev_open("/dev/iommu", O_RDWR | O_CLOEXEC);
	return A.ifd;
}

static int container_fd(void)
{
	if (A.cfd < 0)
		A.cfd = dev_open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	return A.cfd;
}

/* The device's cdev: opened fresh (unbound) at the start of a trace and after VFIO_DEVICE_CLOSE. */
static int device_fd(void)
{
	if (A.dfd < 0)
		A.dfd = dev_open(A.cdev, O_RDWR | O_CLOEXEC);
	return A.dfd;
}

static int group_fd(int group, int *err)
{
	for (int i = 0; i < A.ngroups; i++)
		if (A.groups[i].n == group)
			return A.groups[i].fd;
	char path[64];
	snprintf(path, sizeof(path), "/dev/vfio/%d", group);
	int fd = dev_open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		*err = errno;
		return -1;
	}
	if (A.ngroups < 8) {
		A.groups[A.ngroups].n = group;
		A.groups[A.ngroups++].fd = fd;
	}
	return fd;
}

/* Resets to a fresh state: every fd closed (the kernel releases objects, mappings, pins, bindings). */
void reset_state(void)
{
	if (A.tdev >= 0)
		close(A.tdev);
	A.tdev = -1;
	if (A.dfd >= 0)
		close(A.dfd);
	for (int i = 0; i < A.ngroups; i++)
		close(A.groups[i].fd);
	if (A.cfd >= 0)
		close(A.cfd);
	if (A.ifd >= 0)
		close(A.ifd);
	A.dfd = A.cfd = A.ifd = -1;
	A.ngroups = 0;
	A.bound = 0;
	A.attached = 0;
	A.container_groups = 0;
	A.iommu_set = 0;
}

/* ------------------------------------------------------------------------------------------------ commands */

/* Result of one step: 0 ok, else an errno (outputs in `out`). */
static int sys(int r)
{
	return r < 0 ? errno : 0;
}

static int do_iommufd(const char *op, const struct jv *c, struct step *s)
{
	int fd = iommufd_fd();
	if (fd < 0)
		return errno;
	if (!strcmp(op, "IOMMU_DESTROY")) {
		struct iommu_destroy a = { .size = sizeof(a), .id = arg_id(c, "id") };
		if (bad_step)
			return 0;
		return sys(dev_ioctl(fd, IOMMU_DESTROY, &a));
	}
	if (!strcmp(op, "IOMMU_IOAS_ALLOC")) {
		struct iommu_ioas_alloc a = { .size = sizeof(a), .flags = (uint32_t)arg_num(c, "flags", 0, 0) };
		if (bad_step)
			return 0;
		int e = sys(dev_ioctl(fd, IOMMU_IOAS_ALLOC, &a));
		if (!e)
			out_num(s, "id", a.out_ioas_id);
		return e;
	}
	if (!strcmp(op, "IOMMU_IOAS_IOVA_RANGES")) {
		struct iommu_ioas_iova_ranges a = {
			.size = sizeof(a),
			.ioas_id = arg_id(c, "ioas_id"),
			.num_iovas = (uint32_t)arg_num(c, "num_iovas", 1, 0),
			.__reserved = (uint32_t)arg_num(c, "__reserved", 0, 0),
		};
		if (bad_step)
			return 0;
		uint32_t n = a.num_iovas > 4096 ? 4096 : a.num_iovas;
		struct iommu_iova_range *r = calloc(n ? n : 1, sizeof(*r));
		a.allowed_iovas = (uintptr_t)r;
		int e = sys(dev_ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &a));
		if (!e || e == EMSGSIZE) {
			out_num(s, "num_iovas", a.num_iovas);
			out_u64(s, "out_iova_alignment", a.out_iova_alignment);
		}
		if (!e) {
			struct sb l = { 0 };
			sb_printf(&l, "[");
			for (uint32_t i = 0; i < a.num_iovas && i < n; i++)
				sb_printf(&l, "%s{\"start\":\"0x%llx\",\"last\":\"0x%llx\"}", i ? "," : "",
					  (unsigned long long)r[i].start, (unsigned long long)r[i].last);
			sb_printf(&l, "]");
			out_raw("allowed_iovas", l.p);
			free(l.p);
		}
		free(r);
		return e;
	}
	if (!strcmp(op, "IOMMU_IOAS_ALLOW_IOVAS")) {
		const struct jv *list = jget(c, "iovas");
		if (!list || list->t != J_ARR) {
			set_bad("iovas");
			return 0;
		}
		struct iommu_iova_range *r = calloc(list->len ? list->len : 1, sizeof(*r));
		for (size_t i = 0; i < list->len; i++) {
			r[i].start = arg_u64(list->vals[i], "start", 1);
			r[i].last = arg_u64(list->vals[i], "last", 1);
		}
		struct iommu_ioas_allow_iovas a = {
			.size = sizeof(a),
			.ioas_id = arg_id(c, "ioas_id"),
			.num_iovas = (uint32_t)list->len,
			.__reserved = (uint32_t)arg_num(c, "__reserved", 0, 0),
			.allowed_iovas = (uintptr_t)r,
		};
		int e = bad_step ? 0 : sys(dev_ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &a));
		free(r);
		return e;
	}
	if (!strcmp(op, "IOMMU_IOAS_MAP")) {
		struct iommu_ioas_map a = {
			.size = sizeof(a),
			.flags = (uint32_t)arg_num(c, "flags", 1, 0),
			.ioas_id = arg_id(c, "ioas_id"),
			.__reserved = (uint32_t)arg_num(c, "__reserved", 0, 0),
			.user_va = arg_ptr(c, "user_va"),
			.length = arg_u64(c, "length", 1),
			.iova = arg_u64(c, "iova", 1),
		};
		if (bad_step)
			return 0;
		int e = sys(dev_ioctl(fd, IOMMU_IOAS_MAP, &a));
		if (!e)
			out_u64(s, "iova", a.iova);
		return e;
	}
	if (!strcmp(op, "IOMMU_IOAS_COPY")) {
		struct iommu_ioas_copy a = {
			.size = sizeof(a),
			.flags = (uint32_t)arg_num(c, "flags", 1, 0),
			.dst_ioas_id = arg_id(c, "dst_ioas_id"),
			.src_ioas_id = arg_id(c, "src_ioas_id"),
			.length = arg_u64(c, "length", 1),
			.dst_iova = arg_u64(c, "dst_iova", 1),
			.src_iova = arg_u64(c, "src_iova", 1),
		};
		if (bad_step)
			return 0;
		int e = sys(dev_ioctl(fd, IOMMU_IOAS_COPY, &a));
		if (!e)
			out_u64(s, "dst_iova", a.dst_iova);
		return e;
	}
	if (!strcmp(op, "IOMMU_IOAS_UNMAP")) {
		struct iommu_ioas_unmap a = {
			.size = sizeof(a),
			.ioas_id = arg_id(c, "ioas_id"),
			.iova = arg_u64(c, "iova", 1),
			.length = arg_u64(c, "length", 1),
		};
		if (bad_step)
			return 0;
		int e = sys(dev_ioctl(fd, IOMMU_IOAS_UNMAP, &a));
		if (!e)
			out_u64(s, "length", a.length);
		return e;
	}
	if (!strcmp(op, "IOMMU_OPTION")) {
		struct iommu_option a = {
			.size = sizeof(a),
			.option_id = (uint32_t)arg_num(c, "option_id", 1, 0),
			.op = (uint16_t)arg_num(c, "operation", 1, 0),
			.__reserved = (uint16_t)arg_num(c, "__reserved", 0, 0),
			.object_id = arg_id(c, "object_id"),
			.val64 = arg_u64(c, "val64", 1),
		};
		if (bad_step)
			return 0;
		int e = sys(dev_ioctl(fd, IOMMU_OPTION, &a));
		if (!e)
			out_u64(s, "val64", a.val64);
		return e;
	}
	if (!strcmp(op, "IOMMU_VFIO_IOAS")) {
		struct iommu_vfio_ioas a = {
			.size = sizeof(a),
			.ioas_id = arg_id(c, "ioas_id"),
			.op = (uint16_t)arg_num(c, "operation", 1, 0),
			.__reserved = (uint16_t)arg_num(c, "__reserved", 0, 0),
		};
		if (bad_step)
			return 0;
		int e = sys(dev_ioctl(fd, IOMMU_VFIO_IOAS, &a));
		if (!e)
			out_num(s, "ioas_id", a.ioas_id);
		return e;
	}
	if (!strcmp(op, "IOMMU_GET_HW_INFO")) {
		long long dlen = arg_num(c, "data_len", 1, 0);
		struct iommu_hw_info a = {
			.size = sizeof(a),
			.flags = (uint32_t)arg_num(c, "flags", 0, 0),
			.dev_id = arg_id(c, "dev_id"),
			.data_len = (uint32_t)dlen,
		};
		if (jget(c, "reserved_nonzero") && jget(c, "reserved_nonzero")->t == J_BOOL && jget(c, "reserved_nonzero")->n)
			a.__reserved[1] = 1;
		if (bad_step)
			return 0;
		/* The caller's buffer, filled with 0xa5: what the kernel copies and what it zeroes is then visible. */
		size_t room = (size_t)(dlen > 0 ? dlen : 0);
		if (room > (1u << 20))
			room = 1u << 20;
		unsigned char *data = malloc(room ? room : 1);
		memset(data, 0xa5, room);
		a.data_uptr = (uintptr_t)data;
		int e = sys(dev_ioctl(fd, IOMMU_GET_HW_INFO, &a));
		if (!e) {
			uint64_t copied = a.data_len < room ? a.data_len : room;
			uint64_t zeroed = 0;
			for (size_t i = copied; i < room; i++)
				zeroed += data[i] == 0;
			out_num(s, "data_len", a.data_len);
			out_num(s, "out_data_type", a.out_data_type);
			out_num(s, "copied", copied);
			out_num(s, "zeroed", zeroed);
			out_num(s, "out_max_pasid_log2", a.out_max_pasid_log2);
			out_num(s, "out_capabilities", a.out_capabilities);
		}
		free(data);
		return e;
	}
	if (!strcmp(op, "IOMMU_HWPT_ALLOC")) {
		struct iommu_hwpt_vtd_s1 d = { 0 };
		const struct jv *data = jget(c, "data");
		struct iommu_hwpt_alloc a = {
			.size = sizeof(a),
			.flags = (uint32_t)arg_num(c, "flags", 1, 0),
			.dev_id = arg_id(c, "dev_id"),
			.pt_id = arg_id(c, "pt_id"),
			.data_type = (uint32_t)arg_num(c, "data_type", 1, 0),
			.__reserved = (uint32_t)arg_num(c, "__reserved", 0, 0),
		};
		if (jget(c, "fault_id"))
			a.fault_id = arg_id(c, "fault_id");
		if (data) {
			d.flags = arg_u64(data, "flags", 0);
			d.pgtbl_addr = arg_u64(data, "pgtbl_addr", 1);
			d.addr_width = (uint32_t)arg_num(data, "addr_width", 1, 0);
			a.data_uptr = (uintptr_t)&d;
			a.data_len = sizeof(d);
		}
		a.data_len = (uint32_t)arg_num(c, "data_len", 0, a.data_len);
		if (bad_step)
			return 0;
		int e = sys(dev_ioctl(fd, IOMMU_HWPT_ALLOC, &a));
		if (!e)
			out_num(s, "id", a.out_hwpt_id);
		return e;
	}
	return -1;
}

static int do_device(const char *op, const struct jv *c, struct step *s)
{
	long long dev = arg_num(c, "dev", 1, 0);
	if (bad_step)
		return 0;
	if (dev != 0) {
		/* The platform has one device (edu): another index names nothing the process could open. */
		fprintf(stderr, "ioasid-adapter: %s on device %lld, which the platform does not have\n", op, dev);
		return EINVAL;
	}
	if (!strcmp(op, "VFIO_DEVICE_BIND_IOMMUFD")) {
		int ifd = iommufd_fd(), dfd = device_fd();
		if (ifd < 0 || dfd < 0)
			return errno;
		struct vfio_device_bind_iommufd a = {
			.argsz = sizeof(a), .flags = (uint32_t)arg_num(c, "flags", 0, 0), .iommufd = ifd
		};
		int e = sys(dev_ioctl(dfd, VFIO_DEVICE_BIND_IOMMUFD, &a));
		if (!e) {
			A.bound = 1;
			out_num(s, "id", a.out_devid);
		}
		return e;
	}
	if (!strcmp(op, "VFIO_DEVICE_ATTACH_IOMMUFD_PT")) {
		int dfd = device_fd();
		if (dfd < 0)
			return errno;
		struct vfio_device_attach_iommufd_pt a = {
			.argsz = sizeof(a), .flags = (uint32_t)arg_num(c, "flags", 0, 0), .pt_id = arg_id(c, "pt_id")
		};
		if (bad_step)
			return 0;
		int e = sys(dev_ioctl(dfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a));
		if (!e) {
			A.attached = 1;
			out_num(s, "pt_id", a.pt_id);
		}
		return e;
	}
	if (!strcmp(op, "VFIO_DEVICE_DETACH_IOMMUFD_PT")) {
		int dfd = device_fd();
		if (dfd < 0)
			return errno;
		struct vfio_device_detach_iommufd_pt a = { .argsz = sizeof(a), .flags = (uint32_t)arg_num(c, "flags", 0, 0) };
		int e = sys(dev_ioctl(dfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &a));
		if (!e)
			A.attached = 0;
		return e;
	}
	if (!strcmp(op, "VFIO_DEVICE_CLOSE")) {
		/* Closing the bound device fd; without a bound fd there is nothing to close (as close(-1): EBADF). */
		if (!A.bound)
			return EBADF;
		int e = sys(close(A.dfd));
		A.dfd = -1;
		A.bound = 0;
		A.attached = 0;
		return e;
	}
	return -1;
}

/*
 * The device fd of a type1 user: opened (VFIO_GROUP_GET_DEVICE_FD) as soon as the group is in a container with an
 * IOMMU, as a VMM does before it lets the device run. Native type1 attaches the group at SET_IOMMU anyway; iommufd's
 * container emulation attaches a device to the compat IOAS only when its fd is opened.
 */
static void type1_device_open(int gfd)
{
	if (A.no_device || A.tdev >= 0 || gfd < 0)
		return;
	A.tdev = dev_ioctl(gfd, VFIO_GROUP_GET_DEVICE_FD, A.bdf);
	if (A.tdev < 0)
		fprintf(stderr, "ioasid-adapter: VFIO_GROUP_GET_DEVICE_FD %s: %s\n", A.bdf, strerror(errno));
}

static void type1_device_close(void)
{
	if (A.tdev >= 0)
		close(A.tdev);
	A.tdev = -1;
}

static int do_type1(const char *op, const struct jv *c, struct step *s)
{
	int fd = container_fd();
	if (fd < 0)
		return errno;
	if (!strcmp(op, "VFIO_GET_API_VERSION")) {
		int r = dev_ioctl(fd, VFIO_GET_API_VERSION);
		if (r < 0)
			return errno;
		out_num(s, "version", (uint64_t)r);
		return 0;
	}
	if (!strcmp(op, "VFIO_CHECK_EXTENSION")) {
		long long ext = arg_num(c, "extension", 1, 0);
		if (bad_step)
			return 0;
		int r = dev_ioctl(fd, VFIO_CHECK_EXTENSION, (unsigned long)ext);
		if (r < 0)
			return errno;
		out_num(s, "value", (uint64_t)r);
		return 0;
	}
	if (!strcmp(op, "VFIO_GROUP_SET_CONTAINER") || !strcmp(op, "VFIO_GROUP_UNSET_CONTAINER")) {
		int set = !strcmp(op, "VFIO_GROUP_SET_CONTAINER");
		long long g = arg_num(c, "group", 1, 0);
		if (bad_step)
			return 0;
		int err = 0;
		int gfd = group_fd((int)g, &err);
		if (gfd < 0)
			return err;
		/* A user closes its device before taking the group out of the container (type1 refuses with EBUSY). */
		if (!set && g == A.group)
			type1_device_close();
		int e = set ? sys(dev_ioctl(gfd, VFIO_GROUP_SET_CONTAINER, &fd)) : sys(dev_ioctl(gfd, VFIO_GROUP_UNSET_CONTAINER));
		if (!e && g == A.group) {
			A.container_groups = set;
			if (!set)
				A.iommu_set = 0;
			else if (A.iommu_set)
				type1_device_open(gfd);
		}
		return e;
	}
	if (!strcmp(op, "VFIO_SET_IOMMU")) {
		long long type = arg_num(c, "type", 1, 0);
		if (bad_step)
			return 0;
		int e = sys(dev_ioctl(fd, VFIO_SET_IOMMU, (unsigned long)type));
		if (!e) {
			A.iommu_set = 1;
			int err = 0;
			if (A.container_groups)
				type1_device_open(group_fd(A.group, &err));
		}
		return e;
	}
	if (!strcmp(op, "VFIO_IOMMU_GET_INFO")) {
		long long argsz = arg_num(c, "argsz", 1, 0);
		if (bad_step)
			return 0;
		size_t room = argsz > 65536 ? (size_t)argsz : 65536;
		struct vfio_iommu_type1_info *a = calloc(1, room);
		a->argsz = (uint32_t)argsz;
		int e = sys(dev_ioctl(fd, VFIO_IOMMU_GET_INFO, a));
		if (!e) {
			out_num(s, "argsz", a->argsz);
			out_u64(s, "iova_pgsizes", a->iova_pgsizes);
			out_num(s, "cap_offset", a->cap_offset);
			struct sb l = { 0 };
			sb_printf(&l, "[");
			int have_avail = 0;
			uint32_t avail = 0;
			/* The capability chain, only when the kernel wrote it (cap_offset within what we passed). */
			for (uint32_t off = (a->flags & VFIO_IOMMU_INFO_CAPS) ? a->cap_offset : 0;
			     off && off + sizeof(struct vfio_info_cap_header) <= (uint32_t)argsz;) {
				struct vfio_info_cap_header *h = (void *)((char *)a + off);
				if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
					struct vfio_iommu_type1_info_cap_iova_range *r = (void *)h;
					for (uint32_t i = 0; i < r->nr_iovas; i++)
						sb_printf(&l, "%s{\"start\":\"0x%llx\",\"end\":\"0x%llx\"}", i ? "," : "",
							  (unsigned long long)r->iova_ranges[i].start,
							  (unsigned long long)r->iova_ranges[i].end);
				} else if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
					have_avail = 1;
					avail = ((struct vfio_iommu_type1_info_dma_avail *)h)->avail;
				}
				if (h->next <= off)
					break;
				off = h->next;
			}
			sb_printf(&l, "]");
			out_raw("iova_ranges", l.p);
			free(l.p);
			if (have_avail)
				out_num(s, "dma_avail", avail);
		}
		free(a);
		return e;
	}
	if (!strcmp(op, "VFIO_IOMMU_MAP_DMA")) {
		struct vfio_iommu_type1_dma_map a = {
			.argsz = (uint32_t)arg_num(c, "argsz", 0, sizeof(a)),
			.flags = (uint32_t)arg_num(c, "flags", 1, 0),
			.vaddr = arg_ptr(c, "vaddr"),
			.iova = arg_u64(c, "iova", 1),
			.size = arg_u64(c, "size", 1),
		};
		if (bad_step)
			return 0;
		return sys(dev_ioctl(fd, VFIO_IOMMU_MAP_DMA, &a));
	}
	if (!strcmp(op, "VFIO_IOMMU_UNMAP_DMA")) {
		struct vfio_iommu_type1_dma_unmap a = {
			.argsz = (uint32_t)arg_num(c, "argsz", 0, sizeof(a)),
			.flags = (uint32_t)arg_num(c, "flags", 1, 0),
			.iova = arg_u64(c, "iova", 1),
			.size = arg_u64(c, "size", 1),
		};
		if (bad_step)
			return 0;
		int e = sys(dev_ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &a));
		if (!e)
			out_u64(s, "size", a.size);
		return e;
	}
	return -1;
}

/* The device's DMA is under the process's control (an owned translation or the blocking one). */
int device_owned(void)
{
	return A.mode == MODE_IOMMUFD ? A.bound : A.container_groups;
}

/* The process has given the device a translation (iommufd: an attach; type1: an IOMMU model for its group). */
int device_translated(void)
{
	return A.mode == MODE_IOMMUFD ? A.bound && A.attached : A.container_groups && A.iommu_set;
}

/* Runs one step; returns 0 ok, an errno, or -1 for an unknown command. */
static int run_step(const struct jv *c, struct step *s)
{
	const struct jv *opv = jget(c, "op");
	if (!opv || opv->t != J_STR) {
		set_bad("op");
		return 0;
	}
	const char *op = opv->s;
	if (!strcmp(op, "DEVICE_DMA"))
		return do_dma(c, s);
	if (A.mode == MODE_IOMMUFD) {
		if (!strncmp(op, "VFIO_DEVICE_", 12))
			return do_device(op, c, s);
		if (!strncmp(op, "IOMMU_", 6))
			return do_iommufd(op, c, s);
	} else if (!strncmp(op, "VFIO_", 5)) {
		return do_type1(op, c, s);
	}
	return -1;
}

/* ------------------------------------------------------------------------------------------------ protocol */

static int chan_out = 1;

void send_line(const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(chan_out, s, n);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			perror("ioasid-adapter: write");
			exit(3);
		}
		s += w;
		n -= (size_t)w;
	}
}

static void send_sb(struct sb *b)
{
	sb_printf(b, "\n");
	send_line(b->p, b->len);
}

static void send_error(long long id, int has_id, const char *msg)
{
	struct sb b = { 0 };
	sb_printf(&b, "{\"type\":\"error\",");
	if (has_id)
		sb_printf(&b, "\"id\":%lld,", id);
	sb_printf(&b, "\"message\":");
	sb_str(&b, msg);
	sb_printf(&b, "}");
	send_sb(&b);
	free(b.p);
}

static void handle_run(const struct jv *req)
{
	const struct jv *idv = jget(req, "id"), *sv = jget(req, "steps");
	if (!idv || idv->t != J_NUM || !sv || sv->t != J_ARR) {
		send_error(0, 0, "run request without a numeric id and a steps list");
		return;
	}
	long long id = idv->n;
	reset_state();
	dma_reset();
	nsteps = sv->len;
	steps = calloc(nsteps ? nsteps : 1, sizeof(*steps));
	struct sb res = { 0 };
	sb_printf(&res, "{\"type\":\"result\",\"id\":%lld,\"replies\":[", id);
	for (size_t i = 0; i < nsteps; i++) {
		begin_out();
		bad_step = NULL;
		int e = run_step(sv->vals[i], &steps[i]);
		if (bad_step || e < 0) {
			char msg[160];
			const struct jv *opv = jget(sv->vals[i], "op");
			if (e < 0)
				snprintf(msg, sizeof(msg), "step %zu: %s is not a command of this adapter's profile", i,
					 opv && opv->t == J_STR ? opv->s : "?");
			else
				snprintf(msg, sizeof(msg), "step %zu: missing or malformed field \"%s\"", i, bad_step);
			send_error(id, 1, msg);
			free(res.p);
			free(steps);
			steps = NULL;
			reset_state();
			return;
		}
		struct step *s = &steps[i];
		s->ok = e == 0;
		struct sb one = { 0 };
		if (e == 0) {
			sb_printf(&one, "{\"outcome\":{\"ok\":true%s%s%s}}", out.len ? ",\"out\":{" : "",
				  out.len ? out.p : "", out.len ? "}" : "");
		} else {
			const char *name = e == DMA_FAULT ? "fault" : errno_name(e);
			char unknown[32];
			if (!name) {
				snprintf(unknown, sizeof(unknown), "E%d", e);
				name = unknown;
				fprintf(stderr, "ioasid-adapter: step %zu: errno %d (%s) has no name in spec/errnos.txt\n", i, e,
					strerror(e));
			}
			sb_printf(&one, "{\"outcome\":{\"ok\":false,\"errno\":\"%s\"%s%s%s}}", name,
				  out.len ? ",\"out\":{" : "", out.len ? out.p : "", out.len ? "}" : "");
		}
		sb_printf(&res, "%s%s", i ? "," : "", one.p);
		free(one.p);
	}
	sb_printf(&res, "]}");
	send_sb(&res);
	free(res.p);
	free(steps);
	steps = NULL;
	reset_state();
	A.traces++;
	A.steps += nsteps;
}

static void handle_hello(const struct jv *req)
{
	const struct jv *p = jget(req, "protocol");
	if (!p || p->t != J_NUM || p->n != 1) {
		send_error(0, 0, "this adapter speaks protocol 1 only");
		return;
	}
	struct sb b = { 0 };
	sb_printf(&b, "{\"type\":\"capabilities\",\"protocol\":1,\"capabilities\":");
	capabilities_json(&b);
	sb_printf(&b, "}");
	send_sb(&b);
	free(b.p);
	fprintf(stderr, "ioasid-adapter: handshake done\n");
}

/* Reads lines from fd and dispatches them until bye or end of input. */
static void serve(int in)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		char *nl = memchr(buf, '\n', len);
		if (!nl) {
			if (len + 4096 > cap) {
				cap *= 2;
				buf = realloc(buf, cap);
			}
			ssize_t r = read(in, buf + len, cap - len);
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r <= 0)
				break;
			len += (size_t)r;
			continue;
		}
		*nl = '\0';
		size_t linelen = (size_t)(nl - buf);
		if (linelen > 0 && buf[linelen - 1] == '\r')
			buf[linelen - 1] = '\0';
		const char *err = NULL;
		int blank = 1;
		for (char *q = buf; *q; q++)
			if (*q != ' ' && *q != '\t' && *q != '\r')
				blank = 0;
		if (!blank) {
			struct jv *req = json_parse(buf, &err);
			const struct jv *t = jget(req, "type");
			if (!req || !t || t->t != J_STR) {
				send_error(0, 0, req ? "request without a type" : err);
			} else if (!strcmp(t->s, "hello")) {
				handle_hello(req);
			} else if (!strcmp(t->s, "run")) {
				handle_run(req);
			} else if (!strcmp(t->s, "bye")) {
				json_free(req);
				break;
			} else {
				send_error(0, 0, "unknown request type");
			}
			json_free(req);
		}
		len -= linelen + 1;
		memmove(buf, nl + 1, len);
	}
	free(buf);
	fprintf(stderr, "ioasid-adapter: %llu traces, %llu steps; exiting\n", (unsigned long long)A.traces,
		(unsigned long long)A.steps);
}

int main(int argc, char **argv)
{
	const char *port = NULL;
	A.mode = MODE_IOMMUFD;
	A.name = NULL;
	A.ifd = A.cfd = A.dfd = A.tdev = -1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
			const char *m = argv[++i];
			if (!strcmp(m, "iommufd"))
				A.mode = MODE_IOMMUFD;
			else if (!strcmp(m, "type1"))
				A.mode = MODE_TYPE1;
			else {
				fprintf(stderr, "ioasid-adapter: --mode must be iommufd or type1, not \"%s\"\n", m);
				return 2;
			}
		} else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			port = argv[++i];
		} else if (!strcmp(argv[i], "--name") && i + 1 < argc) {
			A.name = argv[++i];
		} else if (!strcmp(argv[i], "--description") && i + 1 < argc) {
			A.description = argv[++i];
		} else if (!strcmp(argv[i], "--no-device")) {
			A.no_device = 1;
		} else {
			fprintf(stderr,
				"usage: ioasid-adapter [--mode iommufd|type1] [--port PATH] [--name NAME] [--description TEXT] "
				"[--no-device]\n");
			return 2;
		}
	}
	if (!A.name)
		A.name = A.mode == MODE_IOMMUFD ? "linux-iommufd" : "linux-vfio-type1";
	if (platform_init() != 0)
		return 1;
	int in = 0;
	if (port) {
		in = open(port, O_RDWR | O_CLOEXEC);
		if (in < 0) {
			fprintf(stderr, "ioasid-adapter: cannot open %s: %s\n", port, strerror(errno));
			return 1;
		}
		chan_out = in;
		/* A tty channel (a serial port, a virtio console) is set raw: lines of any length pass unchanged, no echo. */
		struct termios t;
		if (isatty(in) && tcgetattr(in, &t) == 0) {
			cfmakeraw(&t);
			tcsetattr(in, TCSANOW, &t);
		}
	}
	fprintf(stderr, "ioasid-adapter: serving %s on %s\n", A.name, port ? port : "stdin/stdout");
	serve(in);
	reset_state();
	return 0;
}
