/*
 * DEVICE_DMA on QEMU's edu device: the hardware oracle of the Linux lane.
 *
 * edu is driven through its BAR0 (the sysfs resource0 mmap, which works in every state of the device: unbound,
 * bound, in a container or not — the VFIO region mmap exists only while a device fd is bound) with bus mastering
 * set in config space before every probe: 0x80 source, 0x88 destination, 0x90 count, 0x98 command (bit 0 start,
 * bit 1: 0 = RAM to the device buffer at 0x40000, 1 = back). QEMU 7.2's edu aborts on a 4096-byte transfer, so a
 * probe is split into transfers of at most 4095 bytes, in address order, stopping at the first fault. A probe
 * longer than three transfers runs the first and the last transfer plus one byte at the first page the IOMMU's
 * page table cannot translate for the direction (if any): the hardware confirms the fault the table predicts.
 *
 * What is observed, and how:
 *   - a fault: the IOMMU's fault interrupt (the DMAR line of /proc/interrupts), with the kernel's DMAR fault
 *     record in /dev/kmsg (address and VT-d fault reason) when it is there (the kernel rate-limits those records
 *     to 10 per 5 s, so the reason may be missing);
 *   - the reason: VT-d reasons 1-3 (root/context entry not present), or any fault of a device to which the process
 *     has given no translation (not bound or not attached / its group not in a container with an IOMMU model: the
 *     kernel's default domain or the blocking one; the record's reason is often rate-limited away), are `blocked`;
 *     otherwise
 *     the page table the IOMMU walks (debugfs domain_translation_struct) at the fault page tells `not-present`
 *     from `read-denied` / `write-denied`;
 *   - where a translated DMA lands: the page table's physical address, mapped back to a buffer by
 *     /proc/self/pagemap; for a write, the buffers are filled with a byte value the device buffer does not hold
 *     before the transfer and scanned after it: the bytes that changed must be where the table says (otherwise
 *     the observed place is reported).
 *   - without the IOMMU debugfs (a kernel built without INTEL_IOMMU_DEBUGFS), the hardware is asked instead: a
 *     one-byte probe in the other direction at the fault page tells a page mapped without that permission from an
 *     absent one, and a read lands where a one-byte write through the same translation lands (a read-only
 *     mapping's landing then stays unknown and is not reported).
 *
 * Not for: PASID-tagged DMA (edu cannot issue it), or timing measurements.
 */
#define _GNU_SOURCE
#include "adapter.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define EDU_BAR_SIZE (1 << 20)
#define EDU_DMA_BUF 0x40000
#define EDU_MAX 4095

static volatile uint8_t *bar;
static int cfg_fd = -1, kmsg_fd = -1;
static uint8_t fill = 1; /* the byte value the buffers hold */

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec t = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	nanosleep(&t, NULL);
}

int dma_init(void)
{
	char path[128];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", A.bdf);
	int fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "ioasid-adapter: open %s: %s\n", path, strerror(errno));
		return -1;
	}
	void *p = mmap(NULL, EDU_BAR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		fprintf(stderr, "ioasid-adapter: mmap %s: %s\n", path, strerror(errno));
		return -1;
	}
	bar = p;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", A.bdf);
	cfg_fd = open(path, O_RDWR | O_CLOEXEC);
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (cfg_fd < 0 || kmsg_fd < 0) {
		fprintf(stderr, "ioasid-adapter: cannot open the config space or /dev/kmsg: %s\n", strerror(errno));
		return -1;
	}
	lseek(kmsg_fd, 0, SEEK_END);
	uint32_t id = *(volatile uint32_t *)(bar + 0);
	fprintf(stderr, "ioasid-adapter: edu id 0x%08x\n", id);
	return 0;
}

void dma_reset(void)
{
}

/* ------------------------------------------------------------------------------------------------ page table */

struct leaf {
	uint64_t iova, size, pte;
};

static struct leaf *leaves;
static size_t nleaves;
/* Whether the device's context entry points at a page table (false: its DMA is blocked). */
static int table_present;
/* Whether the kernel has the Intel IOMMU debugfs (else the adapter asks the hardware with more probes). */
static int have_table = 1;

/* Loads the page table the IOMMU walks for edu (empty when the context entry is not present). */
static void load_table(void)
{
	char path[160];
	snprintf(path, sizeof(path), "/sys/kernel/debug/iommu/intel/%s/domain_translation_struct", A.bdf);
	nleaves = 0;
	table_present = 0;
	FILE *f = fopen(path, "r");
	if (!f) {
		if (have_table)
			fprintf(stderr, "ioasid-adapter: %s: %s; probing the hardware instead\n", path, strerror(errno));
		have_table = 0;
		return;
	}
	size_t cap = nleaves;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		unsigned long long pfn, e[5];
		if (!strncmp(line, "Device ", 7))
			table_present = 1;
		if (sscanf(line, "0x%llx |%llx %llx %llx %llx %llx", &pfn, &e[0], &e[1], &e[2], &e[3], &e[4]) != 6)
			continue;
		/* Columns PML5E PML4E PDPE PDE PTE: the leaf is the rightmost non-zero one. */
		int lvl = 4;
		while (lvl > 0 && e[lvl] == 0)
			lvl--;
		uint64_t size = lvl == 4 ? 1ull << 12 : lvl == 3 ? 1ull << 21 : 1ull << 30;
		if (nleaves == cap) {
			cap = cap ? cap * 2 : 256;
			leaves = realloc(leaves, cap * sizeof(*leaves));
		}
		leaves[nleaves++] = (struct leaf){ pfn << 12, size, e[lvl] };
	}
	fclose(f);
}

static const struct leaf *leaf_at(uint64_t iova)
{
	for (size_t i = 0; i < nleaves; i++)
		if (iova >= leaves[i].iova && iova - leaves[i].iova < leaves[i].size)
			return &leaves[i];
	return NULL;
}

static int leaf_allows(const struct leaf *l, int write)
{
	return l && (l->pte & (write ? 2 : 1));
}

static uint64_t leaf_pa(const struct leaf *l, uint64_t iova)
{
	return (l->pte & 0x000ffffffffff000ull & ~(l->size - 1)) + (iova - l->iova);
}

/* The buffer and offset holding physical address pa, or -1. */
static int pa_to_buf(uint64_t pa, uint64_t *off)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int found = -1;
	for (int k = 0; k < NBUF && found < 0; k++) {
		size_t pages = BUF_SIZE[k] >> 12;
		uint64_t *ent = malloc(pages * 8);
		off_t at = (off_t)(((uintptr_t)A.buf[k] >> 12) * 8);
		if (pread(fd, ent, pages * 8, at) == (ssize_t)(pages * 8)) {
			for (size_t i = 0; i < pages; i++)
				if ((ent[i] >> 63) && (ent[i] & ((1ull << 55) - 1)) == pa >> 12) {
					found = k;
					*off = (uint64_t)i << 12 | (pa & 0xfff);
					break;
				}
		}
		free(ent);
	}
	close(fd);
	return found;
}

/* ------------------------------------------------------------------------------------------------ faults */

static unsigned long long dmar_irqs(void)
{
	FILE *f = fopen("/proc/interrupts", "r");
	if (!f)
		return 0;
	char line[1024];
	unsigned long long total = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, "DMAR"))
			continue;
		char *p = strchr(line, ':');
		if (!p)
			continue;
		p++;
		for (;;) {
			char *end;
			unsigned long long v = strtoull(p, &end, 10);
			if (end == p)
				break;
			total += v;
			p = end;
		}
	}
	fclose(f);
	return total;
}

struct fault {
	int seen;
	uint64_t addr;
	int reason;
};

/* Reads the kernel's new log records; remembers the first DMAR fault record. */
static void read_kmsg(struct fault *f)
{
	char rec[2048];
	for (;;) {
		ssize_t n = read(kmsg_fd, rec, sizeof(rec) - 1);
		if (n < 0) {
			if (errno == EPIPE)
				continue; /* records overwritten: go on with the next */
			break;
		}
		rec[n] = '\0';
		char *a = strstr(rec, "fault addr 0x"), *r = strstr(rec, "[fault reason 0x");
		if (a && r && !f->seen) {
			f->seen = 1;
			f->addr = strtoull(a + 13, NULL, 16);
			f->reason = (int)strtol(r + 16, NULL, 16);
		}
	}
}

/* ------------------------------------------------------------------------------------------------ transfers */

static void wr64(unsigned off, uint64_t v)
{
	*(volatile uint64_t *)(bar + off) = v;
}

static uint64_t rd64(unsigned off)
{
	return *(volatile uint64_t *)(bar + off);
}

static void bus_master(void)
{
	uint16_t cmd = 0;
	if (pread(cfg_fd, &cmd, 2, 4) == 2 && (cmd & 6) != 6) {
		cmd |= 6; /* memory space + bus master */
		if (pwrite(cfg_fd, &cmd, 2, 4) != 2)
			fprintf(stderr, "ioasid-adapter: cannot set bus mastering: %s\n", strerror(errno));
	}
}

/*
 * One edu transfer; returns 0 when it did not fault, 1 when it faulted (*f filled as far as the kernel's record
 * tells), -1 when edu hung. The fault itself is the IOMMU's fault interrupt; the kernel's record (rate-limited to
 * 10 per 5 s) only adds the VT-d reason when it is there.
 */
static int transfer(uint64_t iova, uint64_t len, int write, struct fault *f)
{
	bus_master();
	memset(f, 0, sizeof(*f));
	read_kmsg(&(struct fault){ 0 }); /* drain */
	unsigned long long irq0 = dmar_irqs();
	if (write) {
		wr64(0x80, EDU_DMA_BUF);
		wr64(0x88, iova);
	} else {
		wr64(0x80, iova);
		wr64(0x88, EDU_DMA_BUF);
	}
	wr64(0x90, len);
	wr64(0x98, write ? 3 : 1);
	double t0 = now();
	while (rd64(0x98) & 1) {
		if (now() - t0 > 5.0) {
			fprintf(stderr, "ioasid-adapter: edu DMA did not complete in 5 s\n");
			return -1;
		}
		sleep_s(0.002);
	}
	/* The fault interrupt may trail the completion slightly (it is handled on either vCPU). */
	unsigned long long irq1 = irq0;
	for (int i = 0; i < 8; i++) {
		irq1 = dmar_irqs();
		if (irq1 != irq0)
			break;
		sleep_s(0.004);
	}
	read_kmsg(f);
	if (irq1 == irq0 && !f->seen)
		return 0;
	sleep_s(0.01); /* let the kernel clear the fault record: QEMU drops ("compresses") a fault while one is pending */
	if (!f->seen) {
		f->addr = iova;
		f->reason = -1; /* the record was rate-limited */
	}
	f->seen = 1;
	return 1;
}

static void set_fill(void)
{
	/* A value no byte of the device buffer can hold: it holds bytes read from the buffers under an older value. */
	fill = (uint8_t)(fill % 255 + 1);
	for (int k = 0; k < NBUF; k++)
		memset(A.buf[k], fill, BUF_SIZE[k]);
}

/* The first changed byte of the buffers, or -1. */
static int scan(uint64_t *off, uint64_t *count)
{
	int found = -1;
	*count = 0;
	uint64_t pat = 0x0101010101010101ull * fill;
	for (int k = 0; k < NBUF; k++) {
		const uint64_t *w = (const uint64_t *)A.buf[k];
		for (uint64_t i = 0; i < BUF_SIZE[k] / 8; i++) {
			if (w[i] == pat)
				continue;
			for (int b = 0; b < 8; b++)
				if (A.buf[k][i * 8 + (uint64_t)b] != fill) {
					if (found < 0) {
						found = k;
						*off = i * 8 + (uint64_t)b;
					}
					(*count)++;
				}
		}
	}
	return found;
}

int do_dma(const struct jv *c, struct step *s)
{
	long long dev = -1;
	const struct jv *dv = jget(c, "dev"), *wv = jget(c, "write");
	uint64_t iova, length;
	if (!dv || dv->t != J_NUM || !wv || wv->t != J_BOOL || ju64(jget(c, "iova"), &iova) ||
	    ju64(jget(c, "length"), &length)) {
		out_raw("reason", "\"malformed DEVICE_DMA\"");
		return EINVAL;
	}
	dev = dv->n;
	int write = (int)wv->n;
	if (jget(c, "pasid"))
		return -1; /* edu cannot tag DMA with a PASID; the feature is not declared */
	if (dev != 0 || length == 0 || iova + length - 1 < iova)
		return EINVAL; /* REF-001: the harness refuses a probe of no device or no bytes */
	if (A.no_device)
		return ENODEV;
	uint64_t last = iova + length - 1;
	/* The transfers: all of them for a short probe, else first, last and the first untranslatable page. */
	uint64_t starts[8], lens[8];
	int n = 0;
	if (length <= 3 * EDU_MAX) {
		for (uint64_t a = iova; a <= last && n < 3; a += EDU_MAX) {
			starts[n] = a;
			lens[n++] = last - a + 1 < EDU_MAX ? last - a + 1 : EDU_MAX;
			if (last - a + 1 <= EDU_MAX)
				break;
		}
	} else {
		load_table();
		starts[n] = iova;
		lens[n++] = EDU_MAX;
		for (uint64_t p = (iova + EDU_MAX) & ~0xfffull; p <= last - EDU_MAX + 1 && p > iova;) {
			const struct leaf *l = leaf_at(p);
			if (!leaf_allows(l, write)) {
				starts[n] = p > iova + EDU_MAX ? p : iova + EDU_MAX;
				lens[n++] = 1;
				break;
			}
			uint64_t next = l->iova + l->size;
			if (next <= p)
				break;
			p = next;
		}
		starts[n] = last - EDU_MAX + 1;
		lens[n++] = EDU_MAX;
	}
	if (write)
		set_fill();
	struct fault f;
	for (int i = 0; i < n; i++) {
		int r = transfer(starts[i], lens[i], write, &f);
		if (r < 0)
			return EIO;
		if (r == 0)
			continue;
		/* Classify the fault. */
		const char *reason;
		load_table();
		if (!device_translated() || (f.reason >= 1 && f.reason <= 3) || (have_table && !table_present)) {
			reason = "blocked";
		} else if (!have_table) {
			/* No page table to read: ask the hardware whether the fault page translates the other way. */
			uint64_t at = f.reason >= 0 && (f.addr & ~0xfffull) > starts[i] ? f.addr & ~0xfffull : starts[i];
			struct fault g;
			if (f.reason < 0) {
				/* The record was rate-limited away: find the faulting page with one-byte probes, in order. */
				uint64_t end = starts[i] + lens[i] - 1;
				for (uint64_t p = starts[i]; p <= end && p >= starts[i]; p = (p & ~0xfffull) + 0x1000) {
					if (transfer(p, 1, write, &g) != 0) {
						at = p;
						break;
					}
				}
			}
			int r2 = transfer(at, 1, !write, &g);
			reason = r2 == 0 ? (write ? "write-denied" : "read-denied") : "not-present";
			if (r2 == 0 && !write)
				set_fill(); /* the reverse probe wrote a byte */
		} else {
			/* The first page of the transfer the table cannot translate for the direction (from the record's
			 * address when the kernel logged one). */
			load_table();
			uint64_t at = starts[i];
			if (f.reason >= 0 && (f.addr & ~0xfffull) > at)
				at = f.addr & ~0xfffull;
			for (uint64_t p = at; p <= starts[i] + lens[i] - 1 && p >= at; p = (p & ~0xfffull) + 0x1000) {
				if (!leaf_allows(leaf_at(p), write)) {
					at = p;
					break;
				}
			}
			const struct leaf *lf = leaf_at(at);
			if (leaf_allows(lf, write))
				fprintf(stderr, "ioasid-adapter: DMA faulted where the page table translates 0x%llx\n",
					(unsigned long long)at);
			reason = lf ? (write ? "write-denied" : "read-denied") : "not-present";
		}
		char q[32];
		snprintf(q, sizeof(q), "\"%s\"", reason);
		out_raw("reason", q);
		fprintf(stderr, "ioasid-adapter: DMA %s 0x%llx+0x%llx faulted at 0x%llx (VT-d reason 0x%x): %s\n",
			write ? "write" : "read", (unsigned long long)starts[i], (unsigned long long)lens[i],
			(unsigned long long)f.addr, f.reason, reason);
		return DMA_FAULT;
	}
	/* Translated: where the byte at iova landed. */
	load_table();
	const struct leaf *l = leaf_at(iova);
	uint64_t off = 0;
	int k = l ? pa_to_buf(leaf_pa(l, iova), &off) : -1;
	if (!write && !have_table) {
		/* No page table: where a read lands is where a one-byte write through the same translation lands. */
		struct fault g;
		set_fill();
		if (transfer(iova, 1, 1, &g) == 0) {
			uint64_t soff = 0, count = 0;
			int sk = scan(&soff, &count);
			if (sk >= 0) {
				k = sk;
				off = soff;
			} else {
				fprintf(stderr, "ioasid-adapter: DMA read at 0x%llx translated; its landing is unknown (a read-only "
						"mapping and no IOMMU debugfs)\n", (unsigned long long)iova);
				return 0;
			}
		} else {
			fprintf(stderr, "ioasid-adapter: DMA read at 0x%llx translated, but its mapping is not writable and the "
					"kernel has no IOMMU debugfs: where it landed is unknown\n", (unsigned long long)iova);
			return 0;
		}
	}
	if (write) {
		uint64_t soff = 0, count = 0;
		int sk = scan(&soff, &count);
		if (sk < 0) {
			/*
			 * Nothing changed: QEMU's VT-d dropped the write without a fault record. It does so when the page's
			 * translation is in its IOTLB without write permission (a fault is recorded only on a page walk).
			 */
			fprintf(stderr, "ioasid-adapter: DMA write at 0x%llx changed no memory and raised no fault: write-denied "
					"by a cached translation\n", (unsigned long long)iova);
			out_raw("reason", "\"write-denied\"");
			return DMA_FAULT;
		}
		if (sk >= 0 && (sk != k || soff < off || soff >= off + lens[0])) {
			fprintf(stderr,
				"ioasid-adapter: DMA write at 0x%llx changed buf %d off 0x%llx, the page table says buf %d off "
				"0x%llx: reporting what changed\n",
				(unsigned long long)iova, sk, (unsigned long long)soff, k, (unsigned long long)off);
			k = sk;
			off = soff;
		}
	}
	if (k < 0) {
		fprintf(stderr, "ioasid-adapter: DMA at 0x%llx translated to memory outside the buffers\n",
			(unsigned long long)iova);
		out_raw("buf", "-1");
		out_u64(NULL, "off", l ? leaf_pa(l, iova) : 0);
		return 0;
	}
	out_num(s, "buf", (uint64_t)k);
	out_u64(s, "off", off);
	return 0;
}
