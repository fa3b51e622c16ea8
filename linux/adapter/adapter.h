/* Shared state of the Linux lane's adapter (adapter.c: protocol and ioctls, platform.c: the machine, dma.c: edu). */
#ifndef IOASID_ADAPTER_H
#define IOASID_ADAPTER_H
#include "json.h"
#include <stddef.h>
#include <stdint.h>

enum mode { MODE_IOMMUFD, MODE_TYPE1 };

/* User buffers of the platform: sizes as declared in the capabilities. */
#define NBUF 2
extern const uint64_t BUF_SIZE[NBUF];

/* Errno value standing for the protocol's DMA fault outcome (never a real errno). */
#define DMA_FAULT 100000

struct adapter {
	enum mode mode;
	const char *name, *description;
	int no_device; /* --no-device: no edu (host tests of the protocol codec) */
	/* The edu device. */
	char bdf[64];
	char cdev[300];
	int rid, group;
	/* Per-trace file descriptors. */
	int ifd, cfd, dfd;
	int tdev; /* type1: the device fd from the group */
	struct {
		int n, fd;
	} groups[8];
	int ngroups;
	int bound; /* iommufd: the device fd is bound */
	int attached; /* iommufd: the bound device is attached to a page table */
	int container_groups; /* type1: edu's group is in the container */
	int iommu_set; /* type1: SET_IOMMU succeeded */
	/* User memory. */
	unsigned char *buf[NBUF];
	uint64_t unmapped_va;
	unsigned long long traces, steps;
};
extern struct adapter A;

const char *errno_name(int e);
void reset_state(void);
int device_owned(void);
int device_translated(void);
void send_line(const char *s, size_t n);

/* Outputs of the current step (u64s as "0x..." strings, numbers as JSON numbers); refs can name them. */
struct step;
void out_u64(struct step *s, const char *name, uint64_t v);
void out_num(struct step *s, const char *name, uint64_t v);
void out_raw(const char *name, const char *json);

/*
 * The device nodes and their ioctls: the kernel's, or (built with -DIOASID_FAKE, fake.c) a fake layer that logs
 * every call to stderr and answers from a script, for the host tests of test/linux.
 */
#ifdef IOASID_FAKE
int dev_open(const char *path, int flags);
int dev_ioctl(int fd, unsigned long req, ...);
#else
#define dev_open open
#define dev_ioctl ioctl
#endif

/* platform.c */
int platform_init(void);
void capabilities_json(struct sb *b);

/* dma.c */
int do_dma(const struct jv *c, struct step *s);
void dma_reset(void);
int dma_init(void);
#endif
