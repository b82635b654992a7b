// The endpoints: handler factories that take what they need once and return (req) => response.
import {
  decodeDropSession,
  decodeFrame,
  encodeFrame,
  frameTypeName,
  readFrameHeader,
} from '@switchyard/shared';
import { BadRequestError, NotFoundError, NotReadyError } from './errors.ts';
import { binary, json, type Handler, type Route } from './http.ts';
import {
  encodeInferResponse,
  expertOfModel,
  INFERENCE_HEADER,
  MODEL_VERSION,
  modelMetadata,
  modelName,
  parseInferRequest,
  type ExpertModelSpec,
} from './kserve.ts';
import { METRICS_CONTENT_TYPE, type ServerMetrics } from './metrics.ts';
import type { ExpertService } from './service.ts';

export const SERVER_NAME = 'switchyard-gpu';
export const SERVER_VERSION = '0.1.0';

export interface RouteDeps {
  service: ExpertService;
  metrics: ServerMetrics;
  /** False until the workers are up, and again once draining starts. */
  ready: () => boolean;
  /** Most rows one KServe request may carry. */
  maxRows: number;
}

/** POST /v1/step: one STEP_REQUEST in, STEP_RESPONSE or NEED_PROMPT out. */
export function stepHandler({ service }: Pick<RouteDeps, 'service'>): Handler {
  return async (req) => {
    const frame = decodeFrame(req.body, service.limits);
    if (frame.type !== 'step-request')
      throw new BadRequestError(
        `POST /v1/step: expected a STEP_REQUEST frame (type 1), found ${frameTypeName(readFrameHeader(req.body).type)}; DROP_SESSION goes to POST /v1/drop`,
      );
    return binary(encodeFrame(await service.step(frame)));
  };
}

/** POST /v1/drop: one DROP_SESSION in, 204 out (dropping an unknown session is not an error). */
export function dropHandler({ service }: Pick<RouteDeps, 'service'>): Handler {
  return (req) => {
    const header = readFrameHeader(req.body);
    if (frameTypeName(header.type) !== 'DROP_SESSION')
      throw new BadRequestError(
        `POST /v1/drop: expected a DROP_SESSION frame (type 5), found ${frameTypeName(header.type)}`,
      );
    const { sessionId } = decodeDropSession(req.body);
    const dropped = service.drop(sessionId);
    return { status: 204, headers: { 'x-switchyard-dropped': String(dropped) } };
  };
}

function modelSpec(deps: RouteDeps, name: string, version?: string): ExpertModelSpec {
  const { service } = deps;
  const e = expertOfModel(name);
  if (e === undefined || !service.serves(e))
    throw new NotFoundError(
      `model "${name}" not found: this server serves ${service.servedExperts.map(modelName).join(', ')}`,
    );
  if (version !== undefined && version !== MODEL_VERSION)
    throw new NotFoundError(
      `model "${name}" version "${version}" not found: the only version is ${MODEL_VERSION}`,
    );
  const c = service.config;
  return {
    expert: e,
    hidden: c.controller.hidden,
    vocab: c.vocab,
    maxPrompt: c.experts.max_prompt,
    maxRows: deps.maxRows,
  };
}

export function kserveRoutes(deps: RouteDeps): Route[] {
  const model = String.raw`/v2/models/(?<name>[^/]+)(?:/versions/(?<version>[^/]+))?`;
  const open = { auth: false, errors: 'json', whileDraining: true } as const;
  return [
    {
      method: 'GET',
      pattern: /^\/v2\/health\/live$/,
      endpoint: 'v2-health-live',
      ...open,
      handler: () => json(200, { live: true }),
    },
    {
      method: 'GET',
      pattern: /^\/v2\/health\/ready$/,
      endpoint: 'v2-health-ready',
      ...open,
      handler: () => (deps.ready() ? json(200, { ready: true }) : json(503, { ready: false })),
    },
    {
      method: 'GET',
      pattern: /^\/v2$/,
      endpoint: 'v2-server',
      ...open,
      handler: () =>
        json(200, { name: SERVER_NAME, version: SERVER_VERSION, extensions: ['binary_tensor_data'] }),
    },
    {
      method: 'GET',
      pattern: new RegExp(`^${model}/ready$`),
      endpoint: 'v2-model-ready',
      ...open,
      handler: (req) => {
        const spec = modelSpec(deps, req.params.name, req.params.version);
        const ready = deps.ready();
        return json(ready ? 200 : 503, { name: modelName(spec.expert), ready });
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^${model}$`),
      endpoint: 'v2-model-metadata',
      auth: true,
      errors: 'json',
      handler: (req) => json(200, modelMetadata(modelSpec(deps, req.params.name, req.params.version))),
    },
    {
      method: 'POST',
      pattern: new RegExp(`^${model}/infer$`),
      endpoint: 'v2-model-infer',
      auth: true,
      errors: 'json',
      handler: async (req) => {
        const spec = modelSpec(deps, req.params.name, req.params.version);
        if (!deps.ready()) throw new NotReadyError(`model ${modelName(spec.expert)} is not ready`);
        const h = req.headers[INFERENCE_HEADER];
        const parsed = parseInferRequest(req.body, Array.isArray(h) ? h[0] : h, spec);
        const { tokens, promptLen, h: hidden, batch } = parsed.input;
        const y = await deps.service.stateless(spec.expert, tokens, promptLen, hidden);
        const r = encodeInferResponse(spec.expert, parsed.id, y, batch, spec.hidden, parsed.binaryOutput);
        return { status: 200, headers: r.headers, body: r.body };
      },
    },
  ];
}

export function routes(deps: RouteDeps): Route[] {
  return [
    {
      method: 'POST',
      pattern: /^\/v1\/step$/,
      endpoint: 'v1-step',
      auth: true,
      errors: 'frame',
      handler: stepHandler(deps),
    },
    {
      method: 'POST',
      pattern: /^\/v1\/drop$/,
      endpoint: 'v1-drop',
      auth: true,
      errors: 'frame',
      handler: dropHandler(deps),
    },
    ...kserveRoutes(deps),
    {
      method: 'GET',
      pattern: /^\/metrics$/,
      endpoint: 'metrics',
      auth: false,
      errors: 'json',
      whileDraining: true,
      handler: () => ({
        status: 200,
        headers: { 'content-type': METRICS_CONTENT_TYPE },
        body: deps.metrics.registry.render(),
      }),
    },
  ];
}
