export { mlflowDecommission } from './mlflow-decommission';
