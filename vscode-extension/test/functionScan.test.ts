import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scanFunctions } from '../src/functionScan';

const names = (text: string, lang: string) => scanFunctions(text, lang).map((f) => `${f.name}@${f.line}:${f.character}`);

test('Go: functions, methods and generic functions, at their names', () => {
  const go = [
    'package main',
    '',
    'func foo(x, y int) (z int) {',
    '\treturn x + y',
    '}',
    'func (s *Server) Handle(w http.ResponseWriter) {}',
    'func Map[T any](xs []T) []T { return xs }',
    '// func commented() {}',
    'var f = func() {}',
  ].join('\n');
  assert.deepEqual(names(go, 'go'), ['foo@2:5', 'Handle@5:17', 'Map@6:5']);
});

test('Rust: fn items with bodies, not trait declarations', () => {
  const rs = [
    'pub fn add(a: i32, b: i32) -> i32 {',
    '    a + b',
    '}',
    'trait T {',
    '    fn declared(&self);',
    '    fn provided(&self) -> u8 { 1 }',
    '}',
    'pub(crate) async unsafe fn weird<T>(',
    '    t: T,',
    ') where T: Copy {',
    '}',
    'extern "C" fn callback(x: i32) {}',
  ].join('\n');
  assert.deepEqual(names(rs, 'rust'), ['add@0:7', 'provided@5:7', 'weird@7:27', 'callback@11:14']);
});

test('C: definitions at column 0, not prototypes, calls or initialisers', () => {
  const c = [
    '#include <stdio.h>',
    'static int add(int a, int b);',
    'int total = compute(3);',
    '/* int hidden(void) {',
    '   } */',
    'static int add(int a, int b)',
    '{',
    '    return a + b;',
    '}',
    'struct point *',
    'make_point (int x, int y)',
    '{',
    '    if (x) { return 0; }',
    '}',
    'int main(void) { return add(1, 2); }',
    'typedef int (*fn)(int);',
  ].join('\n');
  assert.deepEqual(names(c, 'c'), ['add@5:11', 'make_point@10:0', 'main@14:4']);
});

test('C++: qualified names and destructors', () => {
  const cpp = ['Widget::~Widget() {}', 'int Widget::size() const {', '  return 0;', '}', 'namespace x {'].join('\n');
  assert.deepEqual(names(cpp, 'cpp'), ['Widget::~Widget@0:0', 'Widget::size@1:4']);
});

test('other languages have no functions here', () => {
  assert.deepEqual(scanFunctions('def f():\n  pass', 'python'), []);
});
