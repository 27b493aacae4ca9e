// CodeMirror 6, assembled from its packages: the editor's features and a language by file name.
import { EditorState, Compartment } from '@codemirror/state';
import {
  EditorView,
  keymap,
  lineNumbers,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSpecialChars,
  drawSelection,
  dropCursor,
  rectangularSelection,
  crosshairCursor,
} from '@codemirror/view';
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { searchKeymap, highlightSelectionMatches } from '@codemirror/search';
import { autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap } from '@codemirror/autocomplete';
import { foldGutter, foldKeymap, indentOnInput, bracketMatching, syntaxHighlighting, defaultHighlightStyle } from '@codemirror/language';
import { lintGutter, linter } from '@codemirror/lint';
import { python } from '@codemirror/lang-python';
import { javascript } from '@codemirror/lang-javascript';
import { json, jsonParseLinter } from '@codemirror/lang-json';
import { unifiedMergeView } from '@codemirror/merge';

export { EditorState, EditorView, Compartment };

export function language(path) {
  if (/\.py$/.test(path)) return [python()];
  if (/\.(m|c)?js$/.test(path)) return [javascript()];
  if (/\.(ts|mts)$/.test(path)) return [javascript({ typescript: true })];
  if (/\.json$/.test(path)) return [json(), linter(jsonParseLinter()), lintGutter()];
  return [];
}

/**
 * The nonce the server put in this page's CSP and its <meta name="csp-nonce">: CodeMirror's
 * <style> element carries it, the only inline style the policy allows.
 */
const nonce = document.querySelector('meta[name="csp-nonce"]')?.content || '';
export const cspNonce = EditorView.cspNonce.of(nonce);

/** The editor's features: line numbers, history, search (Ctrl-F), folding, brackets. */
export function basics({ readOnly = false, onSave, onChange } = {}) {
  const save = onSave ? [{ key: 'Mod-s', preventDefault: true, run: () => (onSave(), true) }] : [];
  return [
    cspNonce,
    lineNumbers(),
    highlightActiveLineGutter(),
    highlightSpecialChars(),
    history(),
    foldGutter(),
    drawSelection(),
    dropCursor(),
    EditorState.allowMultipleSelections.of(true),
    indentOnInput(),
    syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
    bracketMatching(),
    closeBrackets(),
    autocompletion(),
    rectangularSelection(),
    crosshairCursor(),
    highlightActiveLine(),
    highlightSelectionMatches(),
    keymap.of([...save, ...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, ...foldKeymap, ...completionKeymap, indentWithTab]),
    EditorState.readOnly.of(readOnly),
    EditorView.editable.of(!readOnly),
    onChange ? EditorView.updateListener.of((u) => u.docChanged && onChange(u.state)) : [],
    EditorView.contentAttributes.of({ 'aria-label': 'Code editor (Esc then Tab leaves it)' }),
  ];
}

/** A read-only view of `doc` with what changed since `original` shown inline. */
export function diffView(parent, path, original, doc) {
  return new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        cspNonce,
        lineNumbers(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        language(path),
        EditorState.readOnly.of(true),
        EditorView.editable.of(false),
        unifiedMergeView({ original, mergeControls: false, gutter: true }),
      ],
    }),
  });
}
