/*
 * A fake kernel for the host tests of the adapter's protocol codec and argument mapping (test/linux): built with
 * -DIOASID_FAKE (make fake), it replaces the device nodes and their ioctls. Every call is logged to stderr as one
 * JSON line {"call": NAME, ...the fields the adapter passed}; answers are scripted:
 *
 *   - object IDs count up from 1 (IOAS_ALLOC, HWPT_ALLOC, BIND_IOMMUFD);
 *   - an IOVA or a length of 0xbad000 fails with EINVAL; an object ID of 77 fails with ENOENT;
 *   - MAP without FIXED_IOVA picks 0x200000; IOVA_RANGES reports two ranges (EMSGSIZE when fewer are asked for);
 *   - GET_HW_INFO reports 24 bytes of data and zeroes the rest of the caller's buffer;
 *   - VFIO_GET_API_VERSION answers 0; VFIO_CHECK_EXTENSION answers 1 for type 3, else 0; GET_INFO writes a full
 *     capability chain when argsz is large enough.
 *
 * Not for: anything but those tests. It models no kernel behaviour.
 */
#define _GNU_SOURCE
#include "adapter.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

static uint32_t next_id = 1;

int dev_open(const char *path, int flags)
{
	fprintf(stderr, "{\"call\":\"open\",\"path\":\"%s\"}\n", path);
	if (!strcmp(path, "/dev/vfio/99")) {
		errno = ENOENT;
		return -1;
	}
	return open("/dev/null", O_RDWR | (flags & O_CLOEXEC));
}

#define LOG(...) fprintf(stderr, __VA_ARGS__)
#define FAIL(e) \
	do { \
		errno = (e); \
		return -1; \
	} while (0)
#define BAD(x) ((x) == 0xbad000)

int dev_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	unsigned long long v = (unsigned long long)(uintptr_t)arg;
	switch (req) {
	case IOMMU_DESTROY: {
		struct iommu_destroy *a = arg;
		LOG("{\"call\":\"IOMMU_DESTROY\",\"id\":%u}\n", a->id);
		if (a->id == 77 || a->id == 0)
			FAIL(ENOENT);
		return 0;
	}
	case IOMMU_IOAS_ALLOC: {
		struct iommu_ioas_alloc *a = arg;
		LOG("{\"call\":\"IOMMU_IOAS_ALLOC\",\"size\":%u,\"flags\":%u}\n", a->size, a->flags);
		if (a->flags)
			FAIL(EOPNOTSUPP);
		a->out_ioas_id = next_id++;
		return 0;
	}
	case IOMMU_IOAS_MAP: {
		struct iommu_ioas_map *a = arg;
		LOG("{\"call\":\"IOMMU_IOAS_MAP\",\"ioas_id\":%u,\"flags\":%u,\"user_va\":\"0x%llx\",\"length\":\"0x%llx\","
		    "\"iova\":\"0x%llx\"}\n",
		    a->ioas_id, a->flags, (unsigned long long)a->user_va, (unsigned long long)a->length,
		    (unsigned long long)a->iova);
		if (a->ioas_id == 0 || a->ioas_id == 77)
			FAIL(ENOENT);
		if (BAD(a->iova) || BAD(a->length))
			FAIL(EINVAL);
		if (!(a->flags & IOMMU_IOAS_MAP_FIXED_IOVA))
			a->iova = 0x200000;
		return 0;
	}
	case IOMMU_IOAS_UNMAP: {
		struct iommu_ioas_unmap *a = arg;
		LOG("{\"call\":\"IOMMU_IOAS_UNMAP\",\"ioas_id\":%u,\"iova\":\"0x%llx\",\"length\":\"0x%llx\"}\n", a->ioas_id,
		    (unsigned long long)a->iova, (unsigned long long)a->length);
		if (BAD(a->iova))
			FAIL(ENOENT);
		return 0;
	}
	case IOMMU_IOAS_COPY: {
		struct iommu_ioas_copy *a = arg;
		LOG("{\"call\":\"IOMMU_IOAS_COPY\",\"dst_ioas_id\":%u,\"src_ioas_id\":%u,\"dst_iova\":\"0x%llx\"}\n",
		    a->dst_ioas_id, a->src_ioas_id, (unsigned long long)a->dst_iova);
		return 0;
	}
	case IOMMU_IOAS_IOVA_RANGES: {
		struct iommu_ioas_iova_ranges *a = arg;
		LOG("{\"call\":\"IOMMU_IOAS_IOVA_RANGES\",\"ioas_id\":%u,\"num_iovas\":%u}\n", a->ioas_id, a->num_iovas);
		uint32_t asked = a->num_iovas;
		a->num_iovas = 2;
		a->out_iova_alignment = 0x1000;
		if (asked < 2)
			FAIL(EMSGSIZE);
		struct iommu_iova_range *r = (void *)(uintptr_t)a->allowed_iovas;
		r[0] = (struct iommu_iova_range){ 0, 0xfedfffff };
		r[1] = (struct iommu_iova_range){ 0xfef00000, 0x7fffffffffull };
		return 0;
	}
	case IOMMU_IOAS_ALLOW_IOVAS: {
		struct iommu_ioas_allow_iovas *a = arg;
		struct iommu_iova_range *r = (void *)(uintptr_t)a->allowed_iovas;
		LOG("{\"call\":\"IOMMU_IOAS_ALLOW_IOVAS\",\"ioas_id\":%u,\"num_iovas\":%u,\"first_last\":\"0x%llx\"}\n",
		    a->ioas_id, a->num_iovas, a->num_iovas ? (unsigned long long)r[0].last : 0ull);
		return 0;
	}
	case IOMMU_OPTION: {
		struct iommu_option *a = arg;
		LOG("{\"call\":\"IOMMU_OPTION\",\"option_id\":%u,\"op\":%u,\"object_id\":%u}\n", a->option_id, a->op,
		    a->object_id);
		if (a->op == IOMMU_OPTION_OP_GET)
			a->val64 = 1;
		return 0;
	}
	case IOMMU_VFIO_IOAS: {
		struct iommu_vfio_ioas *a = arg;
		LOG("{\"call\":\"IOMMU_VFIO_IOAS\",\"op\":%u,\"ioas_id\":%u}\n", a->op, a->ioas_id);
		if (a->op == IOMMU_VFIO_IOAS_GET)
			a->ioas_id = 1;
		return 0;
	}
	case IOMMU_HWPT_ALLOC: {
		struct iommu_hwpt_alloc *a = arg;
		LOG("{\"call\":\"IOMMU_HWPT_ALLOC\",\"dev_id\":%u,\"pt_id\":%u,\"flags\":%u,\"data_len\":%u}\n", a->dev_id,
		    a->pt_id, a->flags, a->data_len);
		a->out_hwpt_id = next_id++;
		return 0;
	}
	case IOMMU_GET_HW_INFO: {
		/* 24 bytes of VT-d registers (non-zero), the rest of the caller's buffer zeroed. */
		struct iommu_hw_info *a = arg;
		LOG("{\"call\":\"IOMMU_GET_HW_INFO\",\"dev_id\":%u,\"data_len\":%u}\n", a->dev_id, a->data_len);
		unsigned char *d = (void *)(uintptr_t)a->data_uptr;
		for (uint32_t i = 0; i < a->data_len; i++)
			d[i] = i < 24 ? 0x11 : 0;
		a->data_len = 24;
		a->out_data_type = IOMMU_HW_INFO_TYPE_INTEL_VTD;
		a->out_capabilities = 0;
		return 0;
	}
	case VFIO_DEVICE_BIND_IOMMUFD: {
		struct vfio_device_bind_iommufd *a = arg;
		LOG("{\"call\":\"VFIO_DEVICE_BIND_IOMMUFD\",\"flags\":%u,\"iommufd_valid\":%s}\n", a->flags,
		    a->iommufd >= 0 ? "true" : "false");
		a->out_devid = next_id++;
		return 0;
	}
	case VFIO_DEVICE_ATTACH_IOMMUFD_PT: {
		struct vfio_device_attach_iommufd_pt *a = arg;
		LOG("{\"call\":\"VFIO_DEVICE_ATTACH_IOMMUFD_PT\",\"pt_id\":%u}\n", a->pt_id);
		if (a->pt_id == 0 || a->pt_id == 77)
			FAIL(ENOENT);
		return 0;
	}
	case VFIO_DEVICE_DETACH_IOMMUFD_PT:
		LOG("{\"call\":\"VFIO_DEVICE_DETACH_IOMMUFD_PT\"}\n");
		return 0;
	case VFIO_GET_API_VERSION:
		LOG("{\"call\":\"VFIO_GET_API_VERSION\"}\n");
		return 0;
	case VFIO_CHECK_EXTENSION:
		LOG("{\"call\":\"VFIO_CHECK_EXTENSION\",\"extension\":%llu}\n", v);
		return v == VFIO_TYPE1v2_IOMMU;
	case VFIO_SET_IOMMU:
		LOG("{\"call\":\"VFIO_SET_IOMMU\",\"type\":%llu}\n", v);
		return v == VFIO_TYPE1v2_IOMMU ? 0 : (errno = ENODEV, -1);
	case VFIO_GROUP_SET_CONTAINER:
		LOG("{\"call\":\"VFIO_GROUP_SET_CONTAINER\",\"container_valid\":%s}\n", *(int *)arg >= 0 ? "true" : "false");
		return 0;
	case VFIO_GROUP_UNSET_CONTAINER:
		LOG("{\"call\":\"VFIO_GROUP_UNSET_CONTAINER\"}\n");
		return 0;
	case VFIO_IOMMU_GET_INFO: {
		struct vfio_iommu_type1_info *a = arg;
		LOG("{\"call\":\"VFIO_IOMMU_GET_INFO\",\"argsz\":%u}\n", a->argsz);
		uint32_t full = 24 + 16 + 16 * 2 + 12;
		a->flags = VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS;
		a->iova_pgsizes = 0x40201000;
		if (a->argsz < full) {
			a->argsz = full;
			a->cap_offset = 0;
			return 0;
		}
		a->cap_offset = 24;
		struct vfio_iommu_type1_info_cap_iova_range *r = (void *)((char *)a + 24);
		r->header = (struct vfio_info_cap_header){ VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, 24 + 16 + 32 };
		r->nr_iovas = 2;
		r->iova_ranges[0] = (struct vfio_iova_range){ 0, 0xfedfffff };
		r->iova_ranges[1] = (struct vfio_iova_range){ 0xfef00000, 0x7fffffffffull };
		struct vfio_iommu_type1_info_dma_avail *d = (void *)((char *)a + 24 + 16 + 32);
		d->header = (struct vfio_info_cap_header){ VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1, 0 };
		d->avail = 65535;
		return 0;
	}
	case VFIO_IOMMU_MAP_DMA: {
		struct vfio_iommu_type1_dma_map *a = arg;
		LOG("{\"call\":\"VFIO_IOMMU_MAP_DMA\",\"argsz\":%u,\"flags\":%u,\"vaddr\":\"0x%llx\",\"iova\":\"0x%llx\","
		    "\"size\":\"0x%llx\"}\n",
		    a->argsz, a->flags, (unsigned long long)a->vaddr, (unsigned long long)a->iova,
		    (unsigned long long)a->size);
		if (BAD(a->iova))
			FAIL(EINVAL);
		return 0;
	}
	case VFIO_IOMMU_UNMAP_DMA: {
		struct vfio_iommu_type1_dma_unmap *a = arg;
		LOG("{\"call\":\"VFIO_IOMMU_UNMAP_DMA\",\"iova\":\"0x%llx\",\"size\":\"0x%llx\"}\n",
		    (unsigned long long)a->iova, (unsigned long long)a->size);
		return 0;
	}
	}
	LOG("{\"call\":\"unknown\",\"req\":\"0x%lx\"}\n", req);
	FAIL(ENOTTY);
}
