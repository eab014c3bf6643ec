<?php
/**
 * Runs the Keepwell WordPress plugin through a scenario read as JSON from standard input: a list
 * of steps, each doing what WordPress and WooCommerce do on one request. Prints what the plugin
 * left behind: orders' and customers' meta (as the REST API lists it), the fields it printed,
 * the block checkout fields it registered, and what the REST customer query became.
 *
 * Usage: php run.php PLUGIN_DIR < scenario.json
 */

require __DIR__ . '/wp.php';

$plugin   = $argv[1];
$scenario = json_decode( stream_get_contents( STDIN ), true );
$orders   = array();
$rest     = array();

foreach ( $scenario as $step ) {
	$_POST = isset( $step['post'] ) ? $step['post'] : array();
	switch ( $step['do'] ) {
		case 'boot':
			$GLOBALS['kw']['options'] = isset( $step['options'] ) ? $step['options'] : array();
			$GLOBALS['kw']['wc']      = new WooCommerce();
			if ( ! empty( $step['mailpoet'] ) ) {
				require_once __DIR__ . '/mailpoet.php';
			}
			require $plugin . '/keepwell.php';
			do_action( 'plugins_loaded' );
			do_action( 'woocommerce_init' );
			break;
		case 'user':
			$GLOBALS['kw']['user']                  = $step['id'];
			$GLOBALS['kw']['users'][ $step['id'] ] = isset( $step['meta'] ) ? $step['meta'] : array();
			break;
		case 'render_checkout':
			$GLOBALS['kw']['fields']           = array();
			$GLOBALS['kw']['wc']->customer     = $GLOBALS['kw']['user'] ? new WC_Customer( $GLOBALS['kw']['user'] ) : null;
			$fields                            = apply_filters( 'woocommerce_checkout_fields', array( 'order' => array() ) );
			ob_start();
			do_action( 'woocommerce_after_order_notes', new WC_Checkout() );
			do_action( 'woocommerce_review_order_before_submit' );
			$rest[] = array(
				'html'            => ob_get_clean(),
				'printed'         => $GLOBALS['kw']['fields'],
				'checkout_fields' => $fields,
			);
			break;
		case 'render_account':
			$GLOBALS['kw']['fields'] = array();
			do_action( 'woocommerce_edit_account_form' );
			$rest[] = array( 'printed' => $GLOBALS['kw']['fields'] );
			break;
		case 'classic_checkout':
			$order = new WC_Order( $step['order'], $GLOBALS['kw']['user'] );
			if ( $GLOBALS['kw']['user'] ) {
				$customer = new WC_Customer( $GLOBALS['kw']['user'] );
				do_action( 'woocommerce_checkout_update_customer', $customer, $_POST );
				$customer->save();
			}
			do_action( 'woocommerce_checkout_create_order', $order, $_POST );
			$orders[ $step['order'] ] = $order->meta_data();
			break;
		case 'block_checkout':
			$order = new WC_Order( $step['order'], $GLOBALS['kw']['user'] );
			foreach ( $step['fields'] as $key => $value ) {
				do_action( 'woocommerce_set_additional_field_value', $key, $value, 'other', $order );
			}
			$orders[ $step['order'] ] = $order->meta_data();
			break;
		case 'save_account':
			do_action( 'woocommerce_save_account_details', $GLOBALS['kw']['user'] );
			break;
		case 'mailpoet_status':
			$GLOBALS['kw']['subscribers'][ $step['subscriber']['id'] ] = $step['subscriber'];
			do_action( 'mailpoet_subscriber_status_changed', $step['subscriber']['id'] );
			break;
		case 'subscribers':
			foreach ( $step['subscribers'] as $subscriber ) {
				$GLOBALS['kw']['subscribers'][ $subscriber['id'] ] = $subscriber;
			}
			break;
		case 'activate':
			foreach ( $GLOBALS['kw']['activation'] as $callback ) {
				call_user_func( $callback );
			}
			break;
		case 'request':
			do_action( 'init' );
			break;
		case 'visit':
			$_GET     = isset( $step['get'] ) ? $step['get'] : array();
			$redirect = null;
			try {
				do_action( 'wp_loaded' );
			} catch ( KW_Redirect $to ) {
				$redirect = $to->getMessage();
			}
			$rest[] = array(
				'redirect' => $redirect,
				'coupons'  => WC()->cart->applied,
				'session'  => WC()->session->has_session(),
			);
			break;
		case 'run_actions':
			$ran = array();
			while ( $GLOBALS['kw']['actions'] ) {
				list( $hook, $args, $group ) = array_shift( $GLOBALS['kw']['actions'] );
				$ran[]                       = array( $hook, $args, $group );
				do_action( $hook, ...$args );
			}
			$rest[] = array( 'ran' => $ran );
			break;
		case 'rest_customers':
			$request  = new WP_REST_Request( $step['params'] );
			$args     = apply_filters( 'woocommerce_rest_customer_query', array( 'number' => 100 ), $request );
			$response = apply_filters( 'rest_post_dispatch', new WP_REST_Response(), null, $request );
			$rest[]   = array(
				'query'   => $args,
				'headers' => $response->headers,
			);
			break;
		default:
			fwrite( STDERR, "unknown step {$step['do']}\n" );
			exit( 2 );
	}
}

$customers = array();
foreach ( $GLOBALS['kw']['users'] as $id => $meta ) {
	$customer         = new WC_Customer( $id );
	$customers[ $id ] = $customer->meta_data();
}
echo json_encode(
	array(
		'orders'       => (object) $orders,
		'customers'    => (object) $customers,
		'block_fields' => $GLOBALS['kw']['block_fields'],
		'steps'        => $rest,
	),
	JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES
);
