export { main } from './main.ts';
export { scaffold, packageName, type ScaffoldOptions } from './scaffold.ts';
export { writeTemplate, type Variant } from './template.ts';
export { CreateUsageError, CreateTargetError, CreateTemplateError } from './errors.ts';
