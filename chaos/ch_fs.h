/* ch_fs.h — files the controller writes: never half-written, directories made as needed. */
#ifndef CH_FS_H
#define CH_FS_H

#include <jansson.h>
#include <stddef.h>

/* Write data to path through path.tmp + fsync + rename. 0 or a negative errno. */
int ch_fs_write_atomic(const char *path, const void *data, size_t len);
/* Dump json (indented when indent > 0) atomically. 0 or a negative errno. */
int ch_fs_write_json(const char *path, const json_t *j, int indent);
/* mkdir -p. 0 or a negative errno. */
int ch_fs_mkdirs(const char *path);
/* Read a whole file (NUL-terminated, *len excludes the NUL). 0 or a negative errno. */
int ch_fs_read(const char *path, size_t max, char **out, size_t *len);

/* rm -r. 0 or a negative errno. */
int ch_fs_remove_tree(const char *path);

#endif
