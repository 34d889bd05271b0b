/*
 * annot_private.h — shared helpers of the annotation readers (annot.c, annot_asap.c,
 * annot_geojson.c, annot_json.c): a growing polygon list and strict number parsing.
 * Contract of the module: annot.h.
 */
#ifndef WV_ANNOT_PRIVATE_H
#define WV_ANNOT_PRIVATE_H

#include "annot.h"

/* Growing set under construction. */
struct annot_builder {
    struct annot_set *set;
    int cap;
    size_t n_vertices; /* total so far, checked against ANNOT_MAX_VERTICES */
};

/* Start a set of the given format (static string). WV_ENOMEM. */
enum wv_status annot_builder_init(struct annot_builder *b, const char *format);
/* Append a polygon with n_rings empty rings; strings are copied (NULL → ""); *out points into
 * the set (valid until the next add). */
enum wv_status annot_builder_add(struct annot_builder *b, const char *name, const char *group,
                                 const char *type, enum annot_class cls, int n_rings,
                                 struct annot_polygon **out);
/* Give ring `ring` of p its n vertices (xy copied, (n, 2)); checks the file-wide vertex limit and
 * that every value is finite. */
enum wv_status annot_builder_ring(struct annot_builder *b, struct annot_polygon *p, int ring,
                                  int n, const double *xy);
/* Finish: hand over the set (counts n_ignored). */
struct annot_set *annot_builder_finish(struct annot_builder *b);
/* Abandon: free everything. */
void annot_builder_abort(struct annot_builder *b);

/* Parse a whole string as a finite double (leading/trailing blanks allowed; a comma decimal
 * separator is accepted when the string has no '.'). Returns 0 or -1. */
int annot_parse_number(const char *s, double *out);

#endif
