/* web_assets.h — the web page's files, embedded at build time (scripts/embed.sh writes
 * build/gen/web_assets.c from worker/web/). */
#ifndef KIE_WEB_ASSETS_H
#define KIE_WEB_ASSETS_H

#include <stddef.h>

struct web_asset {
	const char *name;         /* file name: "index.html" */
	const char *content_type;
	const unsigned char *data;
	size_t len;
};

/* Ends with an entry whose name is NULL. */
extern const struct web_asset web_assets[];

#endif
