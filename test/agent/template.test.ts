import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TemplateError } from '../../agent/errors.ts';
import { renderTemplateData } from '../../agent/template.ts';

const data = (entries: Record<string, string | Buffer>) =>
  Object.fromEntries(
    Object.entries(entries).map(([k, v]) => [k, Buffer.isBuffer(v) ? v : Buffer.from(v)]),
  );

const render = (template: string, values: Record<string, string | Buffer>) =>
  (renderTemplateData({ out: template }, data(values)).out as Buffer).toString('utf8');

describe('renderTemplateData', () => {
  it("renders the quick-start's CONNECTION_STRING from {{ .user }}-style keys", () => {
    const out = renderTemplateData(
      { CONNECTION_STRING: 'postgresql://{{ .user }}:{{ .password }}@{{ .host }}:5432/mydb' },
      data({ user: 'app', password: 'secret123', host: 'db.example.com' }),
    );
    assert.equal(
      out.CONNECTION_STRING?.toString(),
      'postgresql://app:secret123@db.example.com:5432/mydb',
    );
  });

  const cases: { name: string; template: string; values: Record<string, string>; want: string }[] =
    [
      {
        name: 'reads keys with dots and dashes through index (C03)',
        template: '{{ index . "gradle.properties" }}|{{ index . "my-key" }}',
        values: { 'gradle.properties': 'g', 'my-key': 'm' },
        want: 'g|m',
      },
      {
        name: 'lets default rescue an absent key read with index (C04)',
        template: '{{ index . "opt" | default "fallback" }}',
        values: {},
        want: 'fallback',
      },
      {
        name: 'lets default rescue an absent key read with a field (C04 decision)',
        template: '{{ .opt | default "fallback" }}',
        values: {},
        want: 'fallback',
      },
      {
        name: 'pipes through b64enc',
        template: '{{ .x | b64enc }}',
        values: { x: 'ci-bot:s3cr3t' },
        want: 'Y2ktYm90OnMzY3IzdA==',
      },
      {
        name: 'pipes through b64dec (C08)',
        template: '{{ .k | b64dec }}',
        values: { k: 'LS0tLS1CRUdJTiBURVNUIEtFWS0tLS0tClFVSkQKLS0tLS1FTkQgVEVTVCBLRVktLS0tLQo=' },
        want: '-----BEGIN TEST KEY-----\nQUJD\n-----END TEST KEY-----\n',
      },
      {
        name: 'upper, lower and trim',
        template: '{{ .a | upper }} {{ .b | lower }} [{{ .c | trim }}]',
        values: { a: 'abc', b: 'DEF', c: '  x  ' },
        want: 'ABC def [x]',
      },
      {
        name: 'toJson escapes newlines and leaves < > & alone (C15)',
        template: '{"password":{{ .sa | toJson }}}',
        values: { sa: 'line1\nline2 <&>' },
        want: '{"password":"line1\\nline2 <&>"}',
      },
      {
        name: 'printf with pipes (C15)',
        template: '{{ printf "%s:%s" .u .p | b64enc }}',
        values: { u: 'ci-bot', p: 's3cr3t' },
        want: 'Y2ktYm90OnMzY3IzdA==',
      },
      {
        name: 'fromJson keeps number text (C05 decision)',
        template: '{{ (.all | fromJson).installID }} {{ (.all | fromJson).ratio }}',
        values: { all: '{"installID": 12345678, "ratio": 1.50}' },
        want: '12345678 1.50',
      },
      {
        name: 'if / else if / else',
        template: '{{ if eq .env "prod" }}P{{ else if eq .env "dev" }}D{{ else }}O{{ end }}',
        values: { env: 'dev' },
        want: 'D',
      },
      {
        name: 'range over a map in key order, with trim markers',
        template: '{{- range $k, $v := (.m | fromJson) }}{{ $k }}={{ $v }};{{ end -}}',
        values: { m: '{"b":"2","a":"1"}' },
        want: 'a=1;b=2;',
      },
      {
        name: 'with rebinds the dot',
        template: '{{ with (.m | fromJson) }}{{ .a }}{{ end }}',
        values: { m: '{"a":"x"}' },
        want: 'x',
      },
      {
        name: 'variables',
        template: '{{ $u := .user }}{{ $u | upper }}',
        values: { user: 'app' },
        want: 'APP',
      },
      {
        name: 'text that looks like nunjucks stays literal in a Go template',
        template: '{% raw %} {# c #} {{ .a }}',
        values: { a: 'x' },
        want: '{% raw %} {# c #} x',
      },
      {
        name: 'plain nunjucks with data keys as variables',
        template: '{{ user | upper }}',
        values: { user: 'app' },
        want: 'APP',
      },
      {
        name: 'plain nunjucks fromJson keeps number text',
        template: '{{ (all | fromJson).n }}',
        values: { all: '{"n": 1.50}' },
        want: '1.50',
      },
      {
        name: 'a Go field inside parentheses makes the template Go',
        template: '{{ (.all | fromJson).n }}',
        values: { all: '{"n": 2}' },
        want: '2',
      },
      {
        name: 'a dot inside quotes does not make the template Go',
        template: '{{ user ~ " .x" }}',
        values: { user: 'u' },
        want: 'u .x',
      },
      { name: 'no actions at all', template: 'static', values: {}, want: 'static' },
      {
        name: 'UTF-8 through upper',
        template: '{{ .a | upper }}',
        values: { a: 'straße ü' },
        want: 'STRASSE Ü',
      },
      // literals at the start of a pipeline are Go literals, not nunjucks
      { name: 'an empty string piped to default', template: '{{ "" | default "d" }}', values: {}, want: 'd' },
      { name: 'a string piped to default', template: '{{ "x" | default "d" }}', values: {}, want: 'x' },
      { name: 'a raw string piped to upper', template: '{{ `r\\n` | upper }}', values: {}, want: 'R\\N' },
      { name: 'an empty raw string piped to default', template: '{{ `` | default "d" }}', values: {}, want: 'd' },
      { name: 'zero piped to default', template: '{{ 0 | default 2 }}', values: {}, want: '2' },
      { name: 'a number piped to printf', template: '{{ 42 | printf "%05d" }}', values: {}, want: '00042' },
      { name: 'a Go octal number', template: '{{ 0777 }}', values: {}, want: '511' },
      { name: 'a negative hex number', template: '{{ -0x1F | printf "%d" }}', values: {}, want: '-31' },
      { name: 'a float piped to printf', template: '{{ 1.5 | printf "%.2f" }}', values: {}, want: '1.50' },
      { name: 'true piped to default', template: '{{ true | default false }}', values: {}, want: 'true' },
      { name: 'false piped to default', template: '{{ false | default "f" }}', values: {}, want: 'f' },
      // Go's fmt for lists and maps, as ESO users get from text/template
      {
        name: 'a list prints as Go prints a []interface{}',
        template: '{{ (.j | fromJson).list }}',
        values: { j: '{"list":[1,"x",true,null,1.50]}' },
        want: '[1 x true <nil> 1.50]',
      },
      {
        name: 'a map prints as Go prints a map, in key order',
        template: '{{ .j | fromJson }}',
        values: { j: '{"b":{"y":"2","x":[1]},"a":"1"}' },
        want: 'map[a:1 b:map[x:[1] y:2]]',
      },
      {
        name: 'printf %v of a map and a list',
        template: '{{ printf "%v|%v" (.j | fromJson) (.j | fromJson).l }}',
        values: { j: '{"l":["a","b"]}' },
        want: 'map[l:[a b]]|[a b]',
      },
      {
        name: 'printf %s and %q of a list of strings',
        template: '{{ printf "%s %q" (.j | fromJson).l (.j | fromJson).l }}',
        values: { j: '{"l":["a","b"]}' },
        want: '[a b] ["a" "b"]',
      },
      {
        name: 'printf %d of a JSON integer keeps its digits',
        template: '{{ printf "%d" (.j | fromJson).n }}',
        values: { j: '{"n":12345678901234567890}' },
        want: '12345678901234567890',
      },
      {
        name: 'printf %x of a number and of a string',
        template: '{{ printf "%x %X" 255 "ab" }}',
        values: {},
        want: 'ff 6162',
      },
      { name: 'printf %t of a bool', template: '{{ printf "%t" (eq 1 1) }}', values: {}, want: 'true' },
      { name: 'printf %%', template: '{{ printf "100%%" }}', values: {}, want: '100%' },
      {
        name: 'join leaves nil out, as sprig does',
        template: '{{ (.j | fromJson).l | join "," }}',
        values: { j: '{"l":["a",null,2]}' },
        want: 'a,2',
      },
    ];
  for (const c of cases) {
    it(c.name, () => assert.equal(render(c.template, c.values), c.want));
  }

  it('keeps binary bytes through b64dec', () => {
    const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe]);
    const out = renderTemplateData(
      { bin: '{{ .k | b64dec }}' },
      data({ k: bytes.toString('base64') }),
    ).bin;
    assert.deepEqual(out, bytes);
  });

  const failures: {
    name: string;
    template: string;
    values: Record<string, string>;
    message: string | RegExp;
  }[] = [
    {
      name: 'a missing key (C04)',
      template: '{{ .pw }}',
      values: {},
      message: 'template data key "out": map has no entry for key "pw"',
    },
    {
      name: 'a dotted key read as a path (C03)',
      template: '{{ .gradle.properties }}',
      values: { 'gradle.properties': 'v' },
      message: 'template data key "out": map has no entry for key "gradle"',
    },
    {
      name: 'a dash in a field name (C03)',
      template: '{{ .my-key }}',
      values: { 'my-key': 'v' },
      message: 'template data key "out": bad character U+002D \'-\'',
    },
    {
      name: 'b64dec on text that is not base64 (C08)',
      template: '{{ .k | b64dec }}',
      values: { k: 'plain secret text' },
      message: 'template data key "out": b64dec: the input is not valid base64',
    },
    {
      name: 'fromJson on text that is not JSON',
      template: '{{ (.k | fromJson).a }}',
      values: { k: 'plain secret text' },
      message: 'template data key "out": fromJson: the input is not valid JSON',
    },
    {
      name: 'an unknown function',
      template: '{{ .k | nope }}',
      values: { k: 'v' },
      message: 'template data key "out": function "nope" not defined',
    },
    {
      name: 'an unclosed if',
      template: '{{ if .k }}x',
      values: { k: 'v' },
      message: 'template data key "out": unexpected EOF: {{if}} has no {{end}}',
    },
    {
      name: 'printf %d of a string (Go writes %!d(string=…) and the value)',
      template: '{{ printf "%d" .k }}',
      values: { k: 'secret-text' },
      message: 'template data key "out": printf: %d does not fit argument 1, a string',
    },
    {
      name: 'printf %s of a number',
      template: '{{ printf "%s" (.j | fromJson).n }}',
      values: { j: '{"n":7}' },
      message: 'template data key "out": printf: %s does not fit argument 1, a number',
    },
    {
      name: 'printf %d of a fraction',
      template: '{{ printf "%d" (.j | fromJson).n }}',
      values: { j: '{"n":1.5}' },
      message: 'template data key "out": printf: %d does not fit argument 1, a number',
    },
    {
      name: 'printf %f of a string',
      template: '{{ .k | printf "%.1f" }}',
      values: { k: 'secret-text' },
      message: 'template data key "out": printf: %f does not fit argument 1, a string',
    },
    {
      name: 'printf %t of a string',
      template: '{{ printf "%t" .k }}',
      values: { k: 'true' },
      message: 'template data key "out": printf: %t does not fit argument 1, a string',
    },
    {
      name: 'printf %d of a list holding a string',
      template: '{{ printf "%d" (.j | fromJson).l }}',
      values: { j: '{"l":[1,"secret-text"]}' },
      message: 'template data key "out": printf: %d does not fit argument 1, a list',
    },
    {
      name: 'printf with a verb and no argument (Go writes %!d(MISSING))',
      template: '{{ printf "%s-%d" .k }}',
      values: { k: 'secret-text' },
      message: 'template data key "out": printf: %d has no argument (1 given)',
    },
    {
      name: 'printf with an argument the format does not use (Go writes %!(EXTRA …) and the value)',
      template: '{{ printf "x" .k }}',
      values: { k: 'secret-text' },
      message: 'template data key "out": printf: 1 argument(s) more than the format uses',
    },
    {
      name: 'an undefined nunjucks variable',
      template: '{{ nothing }}',
      values: {},
      message: /template data key "out": .*undefined/,
    },
  ];
  for (const c of failures) {
    it(`fails on ${c.name} with a message naming the template key and no value`, () => {
      assert.throws(
        () => render(c.template, c.values),
        (err: Error) => {
          assert.ok(err instanceof TemplateError);
          if (typeof c.message === 'string') assert.equal(err.message, c.message);
          else assert.match(err.message, c.message);
          assert.doesNotMatch(err.message, /plain secret text|<no value>/);
          return true;
        },
      );
    });
  }

  it('renders every key and fails as a whole when one template fails', () => {
    assert.throws(
      () => renderTemplateData({ ok: '{{ .a }}', bad: '{{ .missing }}' }, data({ a: 'x' })),
      /template data key "bad"/,
    );
  });
});
