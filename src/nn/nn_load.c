/* Loader: protobuf-c unpack of an .onnx file, then a validated graph (nn_model_t). The
 * protobuf tree stays alive with the model: nodes read their attributes from it. */
#include "nn/nn_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int nn_errf(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

size_t nn_dtype_size(int dtype) {
    switch (dtype) {
    case NN_FLOAT: case NN_INT32: return 4;
    case NN_INT64: case NN_DOUBLE: return 8;
    case NN_BOOL: case NN_UINT8: case NN_INT8: return 1;
    default: return 0;
    }
}

const char *nn_dtype_name(int dtype) {
    switch (dtype) {
    case NN_FLOAT: return "float32";
    case NN_INT32: return "int32";
    case NN_INT64: return "int64";
    case NN_DOUBLE: return "float64";
    case NN_BOOL: return "bool";
    case NN_UINT8: return "uint8";
    case NN_INT8: return "int8";
    case 10: return "float16";
    case 16: return "bfloat16";
    case 8: return "string";
    default: return "unknown";
    }
}

int64_t nn_tensor_numel(const nn_tensor_t *t) { return nn_numel(t->ndim, t->dims); }

void nn_tensor_free_data(nn_tensor_t *t) {
    if (!t) return;
    free(t->data);
    t->data = NULL;
}

/* ---- attributes ---- */

const Onnx__AttributeProto *nn_attr(const nn_node_t *n, const char *name) {
    for (size_t i = 0; i < n->proto->n_attribute; i++) {
        const Onnx__AttributeProto *a = n->proto->attribute[i];
        if (a->name && strcmp(a->name, name) == 0) return a;
    }
    return NULL;
}

int64_t nn_attr_i(const nn_node_t *n, const char *name, int64_t def) {
    const Onnx__AttributeProto *a = nn_attr(n, name);
    return a && a->has_i ? a->i : def;
}

float nn_attr_f(const nn_node_t *n, const char *name, float def) {
    const Onnx__AttributeProto *a = nn_attr(n, name);
    return a && a->has_f ? a->f : def;
}

const int64_t *nn_attr_ints(const nn_node_t *n, const char *name, int *count) {
    const Onnx__AttributeProto *a = nn_attr(n, name);
    *count = a ? (int)a->n_ints : -1;
    return a ? a->ints : NULL;
}

const float *nn_attr_floats(const nn_node_t *n, const char *name, int *count) {
    const Onnx__AttributeProto *a = nn_attr(n, name);
    *count = a ? (int)a->n_floats : -1;
    return a ? a->floats : NULL;
}

int nn_attr_s(const nn_node_t *n, const char *name, char *buf, size_t len, const char *def) {
    const Onnx__AttributeProto *a = nn_attr(n, name);
    if (!a || !a->has_s) {
        snprintf(buf, len, "%s", def ? def : "");
        return 0;
    }
    size_t k = a->s.len < len - 1 ? a->s.len : len - 1;
    if (k) memcpy(buf, a->s.data, k);
    buf[k] = 0;
    return 1;
}

/* ---- tensors ---- */

int nn_tensor_from_proto(const Onnx__TensorProto *tp, nn_tensor_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const char *nm = tp->name ? tp->name : "";
    if (tp->n_dims > NN_MAX_DIMS)
        return nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "tensor '%s': %zu dims (max %d)", nm, tp->n_dims, NN_MAX_DIMS);
    int dtype = tp->has_data_type ? tp->data_type : 0;
    size_t es = nn_dtype_size(dtype);
    if (!es)
        return nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "tensor '%s': data type %s (%d) unsupported", nm, nn_dtype_name(dtype), dtype);
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "tensor '%s': external data unsupported", nm);
    if (tp->segment)
        return nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "tensor '%s': segmented tensor unsupported", nm);
    int64_t n = 1;
    for (size_t i = 0; i < tp->n_dims; i++) {
        if (tp->dims[i] < 0 || (tp->dims[i] > 0 && n > (INT64_C(1) << 40) / tp->dims[i]))
            return nn_errf(err, errlen, NN_ERR_INVALID, "tensor '%s': bad dimension %lld", nm, (long long)tp->dims[i]);
        n *= tp->dims[i];
        out->dims[i] = tp->dims[i];
    }
    out->ndim = (int)tp->n_dims;
    out->dtype = dtype;
    size_t bytes = (size_t)n * es;
    /* the stored elements must match the shape before anything is allocated for it (a
     * corrupt shape must not ask for gigabytes: found by the libFuzzer target) */
    size_t have = tp->has_raw_data ? tp->raw_data.len / es
                  : dtype == NN_FLOAT  ? tp->n_float_data
                  : dtype == NN_DOUBLE ? tp->n_double_data
                  : dtype == NN_INT64  ? tp->n_int64_data
                                       : tp->n_int32_data;
    if (have != (size_t)n || (tp->has_raw_data && tp->raw_data.len != bytes))
        return nn_errf(err, errlen, NN_ERR_INVALID, "tensor '%s': %zu elements stored, shape needs %lld", nm, have, (long long)n);
    void *data = malloc(bytes ? bytes : 1);
    if (!data) return nn_errf(err, errlen, NN_ERR_NOMEM, "tensor '%s': out of memory", nm);
    if (tp->has_raw_data) {
        have = tp->raw_data.len / es;
        if (tp->raw_data.len != bytes) goto size_fail;
        if (bytes) memcpy(data, tp->raw_data.data, bytes);   /* little-endian host assumed (x86-64, arm64) */
    } else {
        switch (dtype) {
        case NN_FLOAT:
            have = tp->n_float_data;
            if (have != (size_t)n) goto size_fail;
            if (bytes) memcpy(data, tp->float_data, bytes);
            break;
        case NN_DOUBLE:
            have = tp->n_double_data;
            if (have != (size_t)n) goto size_fail;
            if (bytes) memcpy(data, tp->double_data, bytes);
            break;
        case NN_INT64:
            have = tp->n_int64_data;
            if (have != (size_t)n) goto size_fail;
            if (bytes) memcpy(data, tp->int64_data, bytes);
            break;
        default: /* int32, bool, uint8, int8 live in int32_data */
            have = tp->n_int32_data;
            if (have != (size_t)n) goto size_fail;
            for (int64_t i = 0; i < n; i++) {
                int32_t v = tp->int32_data[i];
                if (dtype == NN_INT32) ((int32_t *)data)[i] = v;
                else if (dtype == NN_INT8) ((int8_t *)data)[i] = (int8_t)v;
                else if (dtype == NN_BOOL) ((uint8_t *)data)[i] = v != 0;
                else ((uint8_t *)data)[i] = (uint8_t)v;
            }
        }
    }
    out->data = data;
    return 0;
size_fail:
    free(data);
    return nn_errf(err, errlen, NN_ERR_INVALID, "tensor '%s': %zu elements stored, shape needs %lld", nm, have, (long long)n);
}

static int read_file(const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return nn_errf(err, errlen, NN_ERR_IO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    while (b) {
        size_t k = fread(b + n, 1, cap - n, f);
        n += k;
        if (n < cap) break;
        uint8_t *nb = realloc(b, cap * 2);
        if (!nb) { free(b); b = NULL; break; }
        b = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!b) return nn_errf(err, errlen, NN_ERR_NOMEM, "%s: out of memory", path);
    if (bad) { free(b); return nn_errf(err, errlen, NN_ERR_IO, "%s: read error", path); }
    *buf = b;
    *len = n;
    return 0;
}

int nn_tensor_load_pb(const char *path, nn_tensor_t *out, char *name, size_t namelen, char *err, size_t errlen) {
    uint8_t *buf;
    size_t len;
    int rc = read_file(path, &buf, &len, err, errlen);
    if (rc) return rc;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    free(buf);
    if (!tp) return nn_errf(err, errlen, NN_ERR_PARSE, "%s: not a TensorProto", path);
    if (name && namelen) snprintf(name, namelen, "%s", tp->name ? tp->name : "");
    rc = nn_tensor_from_proto(tp, out, err, errlen);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return rc;
}

/* ---- model ---- */

static int find_value(const nn_model_t *m, const char *name) {
    for (int i = 0; i < m->n_values; i++)
        if (strcmp(m->values[i].name, name) == 0) return i;
    return -1;
}

static int type_info(const Onnx__ValueInfoProto *vi, nn_tensor_t *t, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "value '%s': only tensor types are supported", vi->name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    t->dtype = tt->has_elem_type ? tt->elem_type : 0;
    if (!nn_dtype_size(t->dtype))
        return nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "value '%s': element type %s unsupported", vi->name, nn_dtype_name(t->dtype));
    if (!tt->shape) { t->ndim = -1; return 0; }  /* unknown rank */
    if (tt->shape->n_dim > NN_MAX_DIMS)
        return nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "value '%s': rank %zu (max %d)", vi->name, tt->shape->n_dim, NN_MAX_DIMS);
    t->ndim = (int)tt->shape->n_dim;
    for (int i = 0; i < t->ndim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        t->dims[i] = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && d->dim_value >= 0 ? d->dim_value : -1;
    }
    return 0;
}

static int add_value(nn_model_t *m, char *name) {
    nn_value_t *v = &m->values[m->n_values];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->producer = -1;
    return m->n_values++;
}

void nn_model_free(nn_model_t *m) {
    if (!m) return;
    for (int i = 0; i < m->n_values; i++) free(m->values[i].init.data);
    for (int i = 0; i < m->n_nodes; i++) {
        free(m->nodes[i].in);
        free(m->nodes[i].out);
    }
    free(m->values);
    free(m->nodes);
    free(m->order);
    free(m->inputs);
    free(m->outputs);
    if (m->proto) onnx__model_proto__free_unpacked(m->proto, NULL);
    free(m);
}

static int build(nn_model_t *m, char *err, size_t errlen) {
    const Onnx__ModelProto *mp = m->proto;
    const Onnx__GraphProto *g = mp->graph;
    if (!g) return nn_errf(err, errlen, NN_ERR_INVALID, "model has no graph");
    m->opset = -1;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if ((!o->domain || !o->domain[0] || strcmp(o->domain, "ai.onnx") == 0) && o->has_version) m->opset = o->version;
    }
    if (m->opset < 0) {
        if (mp->n_opset_import) return nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "model imports no default (ai.onnx) opset");
        m->opset = 1;
    }
    if (g->n_sparse_initializer) return nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "sparse initializers unsupported");
    size_t cap = g->n_initializer + g->n_input + 1;
    for (size_t i = 0; i < g->n_node; i++) cap += g->node[i]->n_output;
    if (cap > (1u << 24) || g->n_node > (1u << 22)) return nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "graph too large");
    m->values = calloc(cap, sizeof *m->values);
    m->nodes = calloc(g->n_node + 1, sizeof *m->nodes);
    m->order = calloc(g->n_node + 1, sizeof *m->order);
    m->inputs = calloc(g->n_input + 1, sizeof *m->inputs);
    m->outputs = calloc(g->n_output + 1, sizeof *m->outputs);
    if (!m->values || !m->nodes || !m->order || !m->inputs || !m->outputs) return nn_errf(err, errlen, NN_ERR_NOMEM, "out of memory");

    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *tp = g->initializer[i];
        if (!tp->name || !tp->name[0]) return nn_errf(err, errlen, NN_ERR_INVALID, "initializer #%zu has no name", i);
        if (find_value(m, tp->name) >= 0) return nn_errf(err, errlen, NN_ERR_INVALID, "initializer '%s' given twice", tp->name);
        int id = add_value(m, tp->name);
        int rc = nn_tensor_from_proto(tp, &m->values[id].init, err, errlen);
        if (rc) return rc;
        m->values[id].is_init = 1;
    }
    for (size_t i = 0; i < g->n_input; i++) {
        const Onnx__ValueInfoProto *vi = g->input[i];
        if (!vi->name || !vi->name[0]) return nn_errf(err, errlen, NN_ERR_INVALID, "graph input #%zu has no name", i);
        int id = find_value(m, vi->name);
        if (id >= 0 && m->values[id].is_init) continue;   /* an initializer with a default */
        if (id >= 0) return nn_errf(err, errlen, NN_ERR_INVALID, "graph input '%s' given twice", vi->name);
        id = add_value(m, vi->name);
        int rc = type_info(vi, &m->values[id].info, err, errlen);
        if (rc) return rc;
        if (m->values[id].info.ndim < 0) return nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "graph input '%s' has no shape", vi->name);
        m->values[id].is_input = m->values[id].has_info = 1;
        m->inputs[m->n_inputs++] = id;
    }
    /* node outputs */
    m->n_nodes = (int)g->n_node;   /* nodes are zeroed: a failure below frees what exists */
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *np = g->node[i];
        nn_node_t *n = &m->nodes[i];
        n->proto = np;
        n->op = np->op_type ? np->op_type : "";
        n->name = np->name && np->name[0] ? np->name : "";
        if (np->domain && np->domain[0] && strcmp(np->domain, "ai.onnx") != 0)
            return nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "unsupported op '%s' of domain '%s' (node '%s', #%zu)", n->op, np->domain, n->name, i);
        n->op_id = nn_op_find(n->op);
        if (n->op_id < 0 && !(m->flags & NN_LOAD_ALLOW_UNSUPPORTED))
            return nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "unsupported op '%s' (node '%s', #%zu)", n->op, n->name, i);
        n->n_in = (int)np->n_input;
        n->n_out = (int)np->n_output;
        n->in = calloc(np->n_input + 1, sizeof(int));
        n->out = calloc(np->n_output + 1, sizeof(int));
        if (!n->in || !n->out) return nn_errf(err, errlen, NN_ERR_NOMEM, "out of memory");
        for (size_t k = 0; k < np->n_output; k++) {
            const char *on = np->output[k];
            if (!on || !on[0]) { n->out[k] = -1; continue; }
            if (find_value(m, on) >= 0)
                return nn_errf(err, errlen, NN_ERR_INVALID, "value '%s' (output of node '%s', %s) is defined twice", on, n->name, n->op);
            int id = add_value(m, np->output[k]);
            m->values[id].producer = (int)i;
            n->out[k] = id;
        }
    }
    /* node inputs */
    for (int i = 0; i < m->n_nodes; i++) {
        nn_node_t *n = &m->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            const char *in = n->proto->input[k];
            if (!in || !in[0]) { n->in[k] = -1; continue; }
            n->in[k] = find_value(m, in);
            if (n->in[k] < 0)
                return nn_errf(err, errlen, NN_ERR_INVALID, "node '%s' (%s): input '%s' is not produced by any node, initializer or graph input", n->name, n->op, in);
        }
        for (size_t a = 0; a < n->proto->n_attribute; a++) {
            const Onnx__AttributeProto *at = n->proto->attribute[a];
            if (at->g || at->n_graphs)
                return nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "node '%s' (%s): subgraph attributes unsupported", n->name, n->op);
        }
    }
    for (size_t i = 0; i < g->n_output; i++) {
        const Onnx__ValueInfoProto *vi = g->output[i];
        int id = vi->name ? find_value(m, vi->name) : -1;
        if (id < 0) return nn_errf(err, errlen, NN_ERR_INVALID, "graph output '%s' is not produced by the graph", vi->name ? vi->name : "");
        nn_tensor_t t;
        if (vi->type && type_info(vi, &t, NULL, 0) == 0 && !m->values[id].has_info) {
            m->values[id].info = t;
            m->values[id].has_info = 1;
        }
        m->outputs[m->n_outputs++] = id;
    }
    /* topological order (Kahn); a cycle leaves nodes behind */
    int *indeg = calloc((size_t)m->n_nodes + 1, sizeof(int));
    if (!indeg) return nn_errf(err, errlen, NN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->n_nodes; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++) {
            int v = m->nodes[i].in[k];
            if (v >= 0 && m->values[v].producer >= 0) indeg[i]++;
        }
    int head = 0, tail = 0;
    for (int i = 0; i < m->n_nodes; i++)
        if (!indeg[i]) m->order[tail++] = i;
    while (head < tail) {
        const nn_node_t *n = &m->nodes[m->order[head++]];
        for (int k = 0; k < n->n_out; k++) {
            if (n->out[k] < 0) continue;
            for (int j = 0; j < m->n_nodes; j++)
                for (int q = 0; q < m->nodes[j].n_in; q++)
                    if (m->nodes[j].in[q] == n->out[k] && --indeg[j] == 0) m->order[tail++] = j;
        }
    }
    free(indeg);
    if (tail != m->n_nodes) return nn_errf(err, errlen, NN_ERR_INVALID, "graph has a cycle");
    return 0;
}

static int load_buffer(const void *buf, size_t len, int flags, nn_model_t **out, char *err, size_t errlen) {
    *out = NULL;
    nn_model_t *m = calloc(1, sizeof *m);
    if (!m) return nn_errf(err, errlen, NN_ERR_NOMEM, "out of memory");
    m->flags = flags;
    m->proto = onnx__model_proto__unpack(NULL, len, buf);
    if (!m->proto) {
        free(m);
        return nn_errf(err, errlen, NN_ERR_PARSE, "not a valid ONNX model (truncated or corrupt protobuf, %zu bytes)", len);
    }
    int rc = build(m, err, errlen);
    if (rc) {
        nn_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int nn_model_load_buffer(const void *buf, size_t len, nn_model_t **out, char *err, size_t errlen) {
    return load_buffer(buf, len, 0, out, err, errlen);
}

int nn_model_load(const char *path, nn_model_t **out, char *err, size_t errlen) {
    return nn_model_load_flags(path, 0, out, err, errlen);
}

int nn_model_load_flags(const char *path, int flags, nn_model_t **out, char *err, size_t errlen) {
    uint8_t *buf;
    size_t len;
    *out = NULL;
    int rc = read_file(path, &buf, &len, err, errlen);
    if (rc) return rc;
    char e2[400];
    rc = load_buffer(buf, len, flags, out, e2, sizeof e2);
    free(buf);
    if (rc) nn_errf(err, errlen, rc, "%s: %s", path, e2);
    return rc;
}

/* ---- info ---- */

int nn_model_n_inputs(const nn_model_t *m) { return m->n_inputs; }
int nn_model_n_outputs(const nn_model_t *m) { return m->n_outputs; }
const char *nn_model_input_name(const nn_model_t *m, int i) { return m->values[m->inputs[i]].name; }
const char *nn_model_output_name(const nn_model_t *m, int i) { return m->values[m->outputs[i]].name; }
void nn_model_input_info(const nn_model_t *m, int i, nn_tensor_t *info) {
    *info = m->values[m->inputs[i]].info;
    info->data = NULL;
}
void nn_model_output_info(const nn_model_t *m, int i, nn_tensor_t *info) {
    const nn_value_t *v = &m->values[m->outputs[i]];
    if (v->has_info) *info = v->info;
    else memset(info, 0, sizeof *info), info->ndim = -1;
    info->data = NULL;
}
int64_t nn_model_opset(const nn_model_t *m) { return m->opset; }
int nn_model_n_nodes(const nn_model_t *m) { return m->n_nodes; }
const char *nn_model_node_op(const nn_model_t *m, int i) { return m->nodes[i].op; }
const char *nn_model_node_name(const nn_model_t *m, int i) { return m->nodes[i].name; }
int nn_model_node_supported(const nn_model_t *m, int i) { return m->nodes[i].op_id >= 0; }
int nn_model_n_dropouts(const nn_model_t *m) {
    int n = 0;
    for (int i = 0; i < m->n_nodes; i++) n += strcmp(m->nodes[i].op, "Dropout") == 0;
    return n;
}
int nn_op_supported(const char *op_type) { return nn_op_find(op_type) >= 0; }
