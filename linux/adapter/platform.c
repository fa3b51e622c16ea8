/*
 * The machine the adapter declares (src/reference/platform.ts): the edu device found in sysfs with its IOMMU group
 * and the group's reserved regions, the user buffers mapped at 2 MiB-aligned bases with a PROT_NONE guard after
 * each, and the capability profile of the handshake.
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
#include <sys/mman.h>
#include <unistd.h>

/* 4 MiB and 2 MiB: large enough for huge-page-sized mappings, small enough to tag and scan on every write probe. */
const uint64_t BUF_SIZE[NBUF] = { 4ull << 20, 2ull << 20 };
#define TWO_MIB (2ull << 20)
#define GUARD (1ull << 30)

static char reserved_json[1024] = "[]";

static int read_str(const char *path, char *out, size_t n)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(out, (int)n, f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	out[strcspn(out, "\n")] = '\0';
	return 0;
}

static int find_edu(void)
{
	DIR *d = opendir("/sys/bus/pci/devices");
	if (!d) {
		fprintf(stderr, "ioasid-adapter: no /sys/bus/pci/devices: %s\n", strerror(errno));
		return -1;
	}
	struct dirent *e;
	int found = 0;
	while ((e = readdir(d))) {
		char path[PATH_MAX], v[32], dv[32];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", e->d_name);
		if (read_str(path, v, sizeof(v)))
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", e->d_name);
		if (read_str(path, dv, sizeof(dv)))
			continue;
		if (!strcmp(v, "0x1234") && !strcmp(dv, "0x11e8")) {
			snprintf(A.bdf, sizeof(A.bdf), "%.60s", e->d_name);
			found = 1;
			break;
		}
	}
	closedir(d);
	if (!found) {
		fprintf(stderr, "ioasid-adapter: no edu device (1234:11e8) on the PCI bus\n");
		return -1;
	}
	unsigned dom, bus, dev, fn;
	if (sscanf(A.bdf, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4)
		return -1;
	A.rid = (int)(bus << 8 | dev << 3 | fn);
	char path[PATH_MAX], link[PATH_MAX];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", A.bdf);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		fprintf(stderr, "ioasid-adapter: %s has no IOMMU group (is intel_iommu=on?)\n", A.bdf);
		return -1;
	}
	link[n] = '\0';
	A.group = atoi(strrchr(link, '/') + 1);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", A.bdf);
	d = opendir(path);
	if (!d) {
		fprintf(stderr, "ioasid-adapter: %s is not bound to vfio-pci (no vfio-dev)\n", A.bdf);
		return -1;
	}
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "vfio", 4))
			snprintf(A.cdev, sizeof(A.cdev), "/dev/vfio/devices/%s", e->d_name);
	closedir(d);
	/* The group's reserved regions, as the kernel reports them: "0x... 0x... msi". */
	snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%d/reserved_regions", A.group);
	FILE *f = fopen(path, "r");
	if (f) {
		struct sb b = { 0 };
		unsigned long long s, l;
		char kind[32];
		int i = 0;
		sb_printf(&b, "[");
		while (fscanf(f, "%llx %llx %31s", &s, &l, kind) == 3) {
			const char *k = !strcmp(kind, "msi") ? "msi" : !strcmp(kind, "direct") ? "direct" :
				     !strcmp(kind, "direct-relaxable") ? "relaxable" : NULL;
			sb_printf(&b, "%s{\"start\":\"0x%llx\",\"last\":\"0x%llx\"", i++ ? "," : "", s, l);
			if (k)
				sb_printf(&b, ",\"kind\":\"%s\"", k);
			sb_printf(&b, "}");
		}
		sb_printf(&b, "]");
		fclose(f);
		if (b.len < sizeof(reserved_json))
			snprintf(reserved_json, sizeof(reserved_json), "%s", b.p);
		free(b.p);
	}
	fprintf(stderr, "ioasid-adapter: edu at %s rid 0x%x group %d cdev %s reserved %s\n", A.bdf, A.rid, A.group,
		A.cdev, reserved_json);
	return 0;
}

static int map_buffers(void)
{
	for (int k = 0; k < NBUF; k++) {
		size_t span = BUF_SIZE[k] + TWO_MIB + GUARD;
		char *r = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (r == MAP_FAILED) {
			perror("ioasid-adapter: mmap reserve");
			return -1;
		}
		uintptr_t base = ((uintptr_t)r + TWO_MIB - 1) & ~(uintptr_t)(TWO_MIB - 1);
		void *b = mmap((void *)base, BUF_SIZE[k], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			       -1, 0);
		if (b == MAP_FAILED) {
			perror("ioasid-adapter: mmap buffer");
			return -1;
		}
		/* The buffer stays resident: DMA probes find its pages by physical address. */
		memset(b, 0, BUF_SIZE[k]);
		A.buf[k] = b;
	}
	/* {bad: "unmapped"}: the first free page at or above 256 MiB (checked free, left unmapped). */
	for (uint64_t va = 0x10000000; va < 0x100000000ull; va += 0x10000000) {
		void *p = mmap((void *)(uintptr_t)va, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			       -1, 0);
		if (p == (void *)(uintptr_t)va) {
			munmap(p, 4096);
			A.unmapped_va = va;
			break;
		}
		if (p != MAP_FAILED)
			munmap(p, 4096);
	}
	return 0;
}

int platform_init(void)
{
	if (!A.no_device) {
		if (find_edu() != 0)
			return -1;
	} else {
		A.rid = 0x18;
		A.group = 0;
		snprintf(reserved_json, sizeof(reserved_json), "[{\"start\":\"0xfee00000\",\"last\":\"0xfeefffff\",\"kind\":\"msi\"}]");
	}
	if (map_buffers() != 0)
		return -1;
	if (!A.no_device && dma_init() != 0)
		return -1;
	return 0;
}

/*
 * Native VFIO type1 (kernel A) registers its module parameters; iommufd's container emulation (kernel B) has none.
 * Native type1 also offers the vaddr updates and the dirty-page tracking (migration capability) that the emulation
 * lacks (INFO-025, INFO-028, INFO-029).
 */
static int native_type1(void)
{
	return access("/sys/module/vfio_iommu_type1/parameters/dma_entry_limit", F_OK) == 0;
}

void capabilities_json(struct sb *b)
{
	const char *profile = A.mode == MODE_IOMMUFD ? "iommufd" : "vfio-type1";
	const char *features = A.mode == MODE_IOMMUFD ? (A.no_device ? "\"auto-iova\",\"copy\"" :
								       "\"auto-iova\",\"copy\",\"dma-probe\"") :
			       native_type1()	      ? (A.no_device ? "\"dirty-tracking\",\"type1-v1\",\"update-vaddr\"" :
								       "\"dirty-tracking\",\"dma-probe\",\"type1-v1\",\"update-vaddr\"") :
							(A.no_device ? "\"type1-v1\"" : "\"dma-probe\",\"type1-v1\"");
	sb_printf(b, "{\"name\":");
	sb_str(b, A.name);
	sb_printf(b, ",\"profile\":\"%s\",\"features\":[%s],", profile, features);
	if (A.description) {
		sb_printf(b, "\"description\":");
		sb_str(b, A.description);
		sb_printf(b, ",");
	}
	/*
	 * Both /dev/vfio/vfio implementations (native type1 and iommufd's emulation) accept VFIO_TYPE1_IOMMU: type1-v1.
	 * QEMU's intel-iommu (aw-bits 39): 4 KiB, 2 MiB and 1 GiB pages, a 39-bit aperture; the IOAS of an attached
	 * device then reports [0, 0xfedfffff] and [0xfef00000, 0x7fffffffff] (the MSI window is the group's reserved
	 * region). No nesting, PASID, IOPF or IOMMU dirty tracking is declared: the lane does not exercise them. QEMU's
	 * intel-iommu has no snoop control, so the IOMMU does not enforce cache coherency (VFIO_DMA_CC_IOMMU is 0).
	 */
	sb_printf(b,
		  "\"platform\":{\"name\":\"qemu-q35-intel-iommu-edu\",\"iommu\":{\"pageSizes\":\"0x40201000\","
		  "\"aperture\":{\"start\":\"0x0\",\"last\":\"0x7fffffffff\"},\"pgtableFormats\":[],\"pasidTableFormats\":[],"
		  "\"nestingHw\":false,\"nestingSw\":false,\"pasidBits\":0,\"enqcmd\":false,\"iopf\":false,"
		  "\"dirtyTracking\":false,\"enforceCoherency\":false},\"devices\":[{\"name\":\"edu\",\"rid\":%d,\"group\":%d,\"kind\":\"physical\","
		  "\"parent\":-1,\"pasid\":false,\"pri\":false,\"ats\":false,\"enqcmd\":false,\"reserved\":%s}],"
		  "\"buffers\":[",
		  A.rid, A.group, reserved_json);
	for (int k = 0; k < NBUF; k++)
		sb_printf(b, "%s{\"size\":\"0x%llx\"}", k ? "," : "", (unsigned long long)BUF_SIZE[k]);
	sb_printf(b, "],\"limits\":{\"memlockPages\":null,\"dmaEntryLimit\":65535,\"pageSize\":4096}}}");
}
