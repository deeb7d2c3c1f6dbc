/* dgring: version and symbol export. */
#ifndef DGRING_VERSION_H
#define DGRING_VERSION_H

#define DG_VERSION_MAJOR 0
#define DG_VERSION_MINOR 1
#define DG_VERSION_PATCH 0

#if defined(DG_BUILDING_LIBRARY) && defined(__GNUC__)
#define DG_EXPORT __attribute__((visibility("default")))
#else
#define DG_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version as (major << 16) | (minor << 8) | patch, so a
 * program can compare the library it runs with the header it was built with. */
DG_EXPORT unsigned dg_version(void);

/* The same as text, "0.1.0". Static storage. */
DG_EXPORT const char *dg_version_string(void);

#ifdef __cplusplus
}
#endif

#endif
