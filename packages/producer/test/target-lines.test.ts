import { describe, expect, it } from 'vitest';
import { InvalidTargetsError, parseTargetLines, readTargetLines } from '../src/index.js';

describe('readTargetLines', () => {
  it('numbers each target by its line, comments and blank lines counted', () => {
    const text = ['# seed list', '', 'http://a.example/1', '   ', '# more', '  http://a.example/2  '].join('\r\n');

    expect(readTargetLines(text, 'urls.txt')).toEqual({
      targets: [
        { url: 'http://a.example/1', source: { name: 'urls.txt', line: 3 } },
        { url: 'http://a.example/2', source: { name: 'urls.txt', line: 6 } },
      ],
      problems: [],
    });
  });

  it('reads every line after a bad one and names each bad line', () => {
    const text = [
      '{"url": "http://a.example/1"',
      'http://a.example/2',
      '{"url": 5}',
      '# a comment',
      '{"url": "http://a.example/3", "extra": 1}',
      '{"url": "http://a.example/4", "method": "POST"}',
    ].join('\n');

    const { targets, problems } = readTargetLines(text, 'urls.txt');

    expect(targets.map((target) => target.source?.line)).toEqual([2, 6]);
    expect(targets[1]).toMatchObject({ url: 'http://a.example/4', method: 'POST' });
    expect(problems).toEqual([
      { where: 'urls.txt line 1', line: 1, code: 'invalid_target', message: 'not valid JSON' },
      {
        where: 'urls.txt line 3',
        line: 3,
        code: 'invalid_target',
        message: 'url: Invalid input: expected string, received number',
      },
      { where: 'urls.txt line 5', line: 5, code: 'invalid_target', message: 'Unrecognized key: "extra"' },
    ]);
  });
});

describe('parseTargetLines', () => {
  it('throws one InvalidTargetsError that lists every line that names no target', () => {
    let thrown: unknown;
    try {
      parseTargetLines('{\nhttp://a.example/\n{"url": 1}', 'stdin');
    } catch (error) {
      thrown = error;
    }

    expect(thrown).toBeInstanceOf(InvalidTargetsError);
    const error = thrown as InvalidTargetsError;
    expect(error.exitCode).toBe(2);
    expect(error.code).toBe('invalid_targets');
    expect(error.message).toBe('2 bad targets');
    expect(error.problems.map((problem) => problem.where)).toEqual(['stdin line 1', 'stdin line 3']);
  });
});
