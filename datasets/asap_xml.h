/*
 * asap_xml.h — ASAP XML annotation writer (format: CAMELYON16_PROTOCOL.md §3.1). Writes the
 * layout ASAP's XmlRepository writes and CAMELYON16/17 ship: <ASAP_Annotations>, one
 * <Annotation Name Type PartOfGroup Color> per polygon with <Coordinate Order X Y> vertices in
 * level-0 pixels, then <AnnotationGroups>. The parser lives in wsi/ (annotation parsers).
 */
#ifndef WV_DATASETS_ASAP_XML_H
#define WV_DATASETS_ASAP_XML_H

#include <stddef.h>

#include "src/error.h"

struct asap_polygon {
    const char *name;  /* "Annotation 0" */
    const char *type;  /* "Polygon" (NULL means "Polygon") */
    const char *group; /* PartOfGroup: "_0", "Tumor", …; NULL means "None" */
    const char *color; /* "#F4FA58"; NULL means that */
    int n_vertices;
    const double *xy; /* (n_vertices, 2): x, y in level-0 px, origin top-left, y down */
};

struct asap_group {
    const char *name;  /* "_0" */
    const char *color; /* "#FF0000"; NULL means that */
};

/*
 * Format the document into a malloc'ed NUL-terminated string (*out, caller frees; *len without
 * the NUL). Coordinates are printed with up to 4 decimals and trailing zeros removed, like
 * ASAP's ("12711.2998", "13357"); values that are multiples of 1/16 px round-trip exactly.
 * Names are XML-escaped. WV_EINVAL on a polygon with < 1 vertex or a non-finite coordinate,
 * WV_ENOMEM on allocation failure.
 */
enum wv_status asap_xml_format(const struct asap_polygon *polys, int n_polys,
                               const struct asap_group *groups, int n_groups, char **out,
                               size_t *len);

/* asap_xml_format, then written atomically to path (temp name, fsync, rename). */
enum wv_status asap_xml_write(const char *path, const struct asap_polygon *polys, int n_polys,
                              const struct asap_group *groups, int n_groups);

#endif
