import { describe, it, expect } from 'vitest';
import { ServerConfigError } from '../errors.ts';
import { checkShardCoverage, parseExpertSet, parseShardMap } from './shard-map.ts';

describe('parseShardMap', () => {
  it('reads single servers and replica lists, normalizing URLs and expert sets', () => {
    const shards = parseShardMap(
      JSON.stringify([
        { url: 'http://gpu-a:8700/', experts: '0-2, 5' },
        { replicas: ['https://gpu-b', 'https://gpu-c/prefix/'], experts: [3, 4, 4], protocol: 'kserve' },
      ]),
    );
    expect(shards).toEqual([
      { index: 0, experts: [0, 1, 2, 5], replicas: ['http://gpu-a:8700'], protocol: 'native' },
      { index: 1, experts: [3, 4], replicas: ['https://gpu-b', 'https://gpu-c/prefix'], protocol: 'kserve' },
    ]);
  });

  it('takes the default protocol from EXPERT_PROTOCOL', () => {
    expect(parseShardMap('[{"url": "http://a", "experts": "0"}]', 'kserve')[0].protocol).toBe('kserve');
  });

  it('is empty when unset', () => {
    expect(parseShardMap(undefined)).toEqual([]);
    expect(parseShardMap('  ')).toEqual([]);
  });

  it.each([
    ['not JSON', '[{url:', /EXPERT_SHARDS: expected JSON/],
    ['an empty list', '[]', /expected a non-empty JSON array/],
    ['no URL', '[{"experts": "0-3"}]', /EXPERT_SHARDS\[0\]: expected "url" or a non-empty "replicas" list/],
    [
      'a bad URL',
      '[{"url": "gpu-a:8700", "experts": "0"}]',
      /EXPERT_SHARDS\[0\].url: expected an http: or https: URL/,
    ],
    ['a URL with a query', '[{"url": "http://a/?x=1", "experts": "0"}]', /without query or fragment/],
    [
      'a repeated URL',
      '[{"url": "http://a", "replicas": ["http://a/"], "experts": "0"}]',
      /the same URL is listed twice/,
    ],
    ['a backwards range', '[{"url": "http://a", "experts": "3-1"}]', /range "3-1" runs backwards/],
    ['garbage experts', '[{"url": "http://a", "experts": "all"}]', /expected ids and ranges like "0-3,6"/],
    [
      'an unknown protocol',
      '[{"url": "http://a", "experts": "0", "protocol": "grpc"}]',
      /expected one of native, kserve, found "grpc"/,
    ],
    [
      'an unknown field',
      '[{"url": "http://a", "experts": "0", "weight": 2}]',
      /unknown field\(s\) weight; valid fields: url, replicas, experts, protocol/,
    ],
  ])('refuses %s', (_, raw, message) => {
    expect(() => parseShardMap(raw)).toThrow(ServerConfigError);
    expect(() => parseShardMap(raw)).toThrow(message);
  });
});

describe('parseExpertSet', () => {
  it('accepts ranges, lists and arrays', () => {
    expect(parseExpertSet('7, 0-2,1', 'x')).toEqual([0, 1, 2, 7]);
    expect(parseExpertSet([2, 0], 'x')).toEqual([0, 2]);
    expect(() => parseExpertSet([-1], 'x')).toThrow(/expected expert ids in \[0, 65535\], found -1/);
  });
});

describe('checkShardCoverage', () => {
  const map = (experts: string) => parseShardMap(JSON.stringify([{ url: 'http://a', experts }]));
  it('accepts a map that serves every expert', () => {
    expect(() => checkShardCoverage(map('0-3'), 4)).not.toThrow();
  });
  it('names the experts nobody serves', () => {
    expect(() => checkShardCoverage(map('0,2'), 4)).toThrow(/no shard serves expert\(s\) 1, 3/);
  });
  it('names an expert the model does not have', () => {
    expect(() => checkShardCoverage(map('0-4'), 4)).toThrow(
      /expert 4 does not exist; the model has experts 0-3/,
    );
  });
  it('says how to configure an empty map', () => {
    expect(() => checkShardCoverage([], 4)).toThrow(/EXPERT_SHARDS: not set; expected a JSON list like/);
  });
});
