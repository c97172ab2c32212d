/* SPDX-License-Identifier: Apache-2.0 */
/* test_s3.c — aws/s3.c: ListObjectsV2 answers (botocore's recorded one, url-encoded keys, hostile pages) and
 * s3:// URIs. */
#include <cjson/cJSON.h>

#include "aws/s3.h"
#include "aws/s3traits.h"
#include "crypto.h"
#include "util.h"
#include "test.h"
#include "vectors.h"

struct listed {
        int n;
        uint64_t total;
        char keys[8][64];
};

static int on_obj(void *ud, const struct s3_object *o) {
        struct listed *l = ud;
        if (l->n < 8)
                snprintf(l->keys[l->n], sizeof l->keys[0], "%s", o->key);
        l->n++;
        l->total += o->size;
        return 0;
}

static void test_list(void) {
        _cleanup_free_ char *x = t_fixture("xml-responses/responses-s3-list-objects.xml", NULL);
        _cleanup_free_ char *j = t_fixture("xml-responses/responses-s3-list-objects.json", NULL);
        struct listed l = { 0 };
        bool more = true;
        char *tok = NULL;
        int r = x ? s3_parse_list(x, strlen(x), on_obj, &l, &more, &tok) : -1;
        cJSON *want = j ? cJSON_Parse(j) : NULL;
        cJSON *contents = cJSON_GetObjectItem(want, "Contents");
        int wn = cJSON_GetArraySize(contents);
        T_EXPECT("list fixture parses", r == 0 && !more && !tok);
        T_EXPECT("list fixture object count matches botocore's parse", l.n == wn && wn > 0);
        T_EXPECT("list fixture first key", wn > 0 && !strcmp(l.keys[0], cJSON_GetStringValue(cJSON_GetObjectItem(
                                                                           cJSON_GetArrayItem(contents, 0), "Key"))));
        cJSON_Delete(want);
        const char *page = "<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
                           "<NextContinuationToken>tok/=+</NextContinuationToken>"
                           "<Contents><Key>a%20b%2Bc%3D%E2%9C%93</Key><Size>5</Size></Contents></ListBucketResult>";
        struct listed l2 = { 0 };
        r = s3_parse_list(page, strlen(page), on_obj, &l2, &more, &tok);
        T_EXPECT("url-encoded keys decoded", r == 0 && !strcmp(l2.keys[0], "a b+c=\xe2\x9c\x93"));
        T_EXPECT("continuation token kept verbatim", more && tok && !strcmp(tok, "tok/=+"));
        free(tok);
        const char *bad = "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
        T_EXPECT("truncated without token refused", s3_parse_list(bad, strlen(bad), on_obj, &l2, &more, &tok) < 0);
        const char *badsize = "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>";
        T_EXPECT("negative size refused", s3_parse_list(badsize, strlen(badsize), on_obj, &l2, &more, &tok) < 0);
}

static void test_uri(void) {
        char *b = NULL, *k = NULL, err[256];
        T_EXPECT("s3 uri", s3_parse_uri("s3://my.bucket/a/b c", &b, &k, err, sizeof err) == 0 && !strcmp(b, "my.bucket") &&
                                   !strcmp(k, "a/b c"));
        free(b);
        free(k);
        T_EXPECT("s3 uri bad bucket", s3_parse_uri("s3://AB/x", &b, &k, err, sizeof err) == -EINVAL);
        T_EXPECT("not s3 uri", s3_parse_uri("http://x/y", &b, &k, err, sizeof err) == -EINVAL);
}

/* ETags with and without quotes; what a store was seen to do, per endpoint and bucket */
static void test_etags_and_traits(void) {
        char b[160];
        s3_etag_unquoted("\"abc\"", b, sizeof b);
        T_EXPECT("unquoted: quotes removed", !strcmp(b, "abc"));
        s3_etag_unquoted("abc", b, sizeof b);
        T_EXPECT("unquoted: bare kept", !strcmp(b, "abc"));
        s3_etag_unquoted("\"", b, sizeof b);
        T_EXPECT("unquoted: a lone quote kept", !strcmp(b, "\""));
        T_EXPECT("same: quoted vs bare", s3_etag_same("\"e1\"", "e1") && s3_etag_same("e1", "\"e1\""));
        T_EXPECT("same: different", !s3_etag_same("\"e1\"", "\"e2\""));
        T_EXPECT("same: empty is never the same", !s3_etag_same("", "") && !s3_etag_same("\"\"", ""));
        unsigned char md5[16];
        crypto_md5("abc", 3, md5); /* RFC 1321 A.5 */
        char hex[33];
        hex_encode(md5, 16, hex);
        T_EXPECT("md5 RFC 1321 vector", !strcmp(hex, "900150983cd24fb0d6963f7d28e17f72"));
        T_EXPECT("etag is md5: quoted", s3_etag_is_md5("\"900150983cd24fb0d6963f7d28e17f72\"", md5));
        T_EXPECT("etag is md5: upper case", s3_etag_is_md5("900150983CD24FB0D6963F7D28E17F72", md5));
        T_EXPECT("etag is md5: multipart is not", !s3_etag_is_md5("\"900150983cd24fb0d6963f7d28e17f72-2\"", md5));
        T_EXPECT("etag is md5: another", !s3_etag_is_md5("\"000150983cd24fb0d6963f7d28e17f72\"", md5));
        struct aws_ctx a = { 0 }, other = { 0 };
        snprintf(a.s3_endpoint, sizeof a.s3_endpoint, "http://127.0.0.1:1");
        snprintf(other.s3_endpoint, sizeof other.s3_endpoint, "http://127.0.0.1:2");
        s3traits_reset();
        T_EXPECT("traits: none known", s3traits_get(&a, "b") == 0);
        T_EXPECT("traits: new one said", s3traits_add(&a, "b", S3T_IFMATCH_UNQUOTED));
        T_EXPECT("traits: known one not said again", !s3traits_add(&a, "b", S3T_IFMATCH_UNQUOTED));
        T_EXPECT("traits: per bucket", s3traits_get(&a, "c") == 0);
        T_EXPECT("traits: per endpoint", s3traits_get(&other, "b") == 0);
        T_EXPECT("traits: kept", s3traits_get(&a, "b") == S3T_IFMATCH_UNQUOTED);
        T_EXPECT("traits: removed", s3traits_del(&a, "b", S3T_IFMATCH_UNQUOTED) && s3traits_get(&a, "b") == 0);
        T_EXPECT("traits: removing what is not there", !s3traits_del(&a, "b", S3T_NO_CRC));
        char name[16];
        for (int i = 0; i < S3_TRAITS_MAX + 4; i++) {
                snprintf(name, sizeof name, "b%d", i);
                s3traits_add(&other, name, S3T_NO_CRC);
        }
        snprintf(name, sizeof name, "b%d", S3_TRAITS_MAX + 3);
        T_EXPECT("traits: bounded (past the table, nothing is learnt)", s3traits_get(&other, name) == 0);
        s3traits_reset();
}

int main(int argc, char **argv) {
        t_vectors_from(argc, argv);
        test_list();
        test_uri();
        test_etags_and_traits();
        return t_summary();
}
